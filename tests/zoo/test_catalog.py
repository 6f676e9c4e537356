"""The catalog against the original MODEL_ZOO.md: every row, metric, time, config and URL."""

from __future__ import annotations

import re

import pytest

from detic_cli.config.loader import load_config
from detic_cli.zoo.catalog import BACKBONES, DEFAULT_MODEL, ROWS, SECTIONS, STAGES, weight_files
from detic_cli.zoo.resolve import config_path

_ROW = re.compile(r"^\|\s*\[(?P<title>[^\]]+)\]\(\.\./configs/(?P<config>[^)]+)\)\s*\|(?P<cells>.*)$")
_HEADINGS = {
    "Open-vocabulary LVIS": "ov-lvis", "Standard LVIS": "lvis", "Open-vocabulary COCO": "ov-coco",
    "Cross-dataset evaluation": "cross-dataset", "Real-time models": "real-time",
}


_COLUMNS = {  # a table header's cell -> the Metrics field it fills
    "mask mAP": "mask_ap", "mask mAP_novel": "mask_ap_novel", "mask mAP_rare": "mask_ap_rare", "box mAP": "box_ap",
    "box mAP_rare": "box_ap_rare", "box mAP50": "box_ap50", "box mAP50_novel": "box_ap50_novel",
    "Objects365 box mAP": "o365_box_ap", "OpenImages box mAP50": "oid_box_ap50", "LVIS box mAP": "lvis_box_ap",
    "Run time (ms)": "run_time_ms",
}


@pytest.fixture(scope="module")
def table_rows(shared_dir):
    """Every row of the original tables: section, title, config, url and {column header: cell} for the cells
    between the name and the download link, under the header of the table the row is in."""
    rows, section, header = [], None, []
    for line in (shared_dir / "detic-reference" / "MODEL_ZOO.md").read_text().splitlines():
        if line.startswith("## "):
            section = _HEADINGS.get(line[3:].strip())
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "Name":
            header = cells
        match = _ROW.match(line.strip())
        if match:
            url = re.search(r"\((https://[^)]+)\)", match["cells"])[1]
            rows.append({"section": section, "title": match["title"], "config": match["config"], "url": url,
                         "columns": dict(zip(header[1:-1], cells[1:-1], strict=True))})
    return rows


def test_counts():
    assert len(ROWS) == 26 and len(weight_files()) == 22 and len({r.name for r in ROWS}) == 26
    assert [sum(r.section == s for r in ROWS) for s in SECTIONS] == [6, 6, 4, 5, 5]


def test_rows_match_the_original_tables(table_rows):
    """Names, configs, URLs and every metric under its own column. Training time: the table's cell; the
    real-time table has no such column, so a row there carries the time printed for the same checkpoint in
    another table (47h for the SwinB one), or none where the checkpoint is in no other table."""
    assert len(table_rows) == len(ROWS)
    printed_times = {}  # checkpoint url -> its training time, from the 21 rows of the tables that print one
    for t in (t for t in table_rows if "Training time" in t["columns"]):
        assert printed_times.setdefault(t["url"], t["columns"]["Training time"]) == t["columns"]["Training time"]
    assert len(printed_times) == 19
    for table, row in zip(table_rows, ROWS, strict=True):
        assert (row.section, row.title, row.config, row.weights.url) == \
            (table["section"], table["title"], table["config"], table["url"])
        columns = dict(table["columns"])
        time = columns.pop("Training time", None) or printed_times.get(table["url"])
        assert row.training_time == time, row.name
        assert re.fullmatch(r"\d+h", time or "0h"), time
        assert row.metrics.as_dict() == {_COLUMNS[name]: float(cell) for name, cell in columns.items()}, row.name
    assert [r.training_time for r in ROWS if r.section == "real-time"] == ["47h", "47h", None, None, None]


def test_rows_sharing_a_url_share_one_file():
    by_url = {}
    for row in ROWS:
        assert by_url.setdefault(row.weights.url, row.weights) is row.weights
        assert row.weights.filename == row.weights.url.rsplit("/", 1)[1] == f"{row.stem}.pth"
    assert len(by_url) == 22 and DEFAULT_MODEL in weight_files()


def test_every_init_is_known_and_every_backbone_family_present():
    known = set(weight_files()) | {b.name for b in BACKBONES} | {s.name for s in STAGES}
    assert all(r.init in known for r in ROWS) and all(s.init in known for s in STAGES)
    names = {b.name for b in BACKBONES}
    assert {"resnet50_miil_21k", "swin_base_patch4_window7_224_22k", "convnext_tiny_22k_224", "R-50_MSRA"} <= names
    assert len({b.weights.filename for b in BACKBONES}) == len(BACKBONES)


def test_project_and_original_configs_exist(shared_dir):
    for config in {r.config for r in ROWS} | {s.config for s in STAGES}:
        assert config_path(config).is_file()
        assert (shared_dir / "detic-reference" / "configs" / config).is_file()


def test_eval_overrides_apply_to_each_config():
    for row in ROWS:
        cfg = load_config(config_path(row.config), list(row.eval_overrides))
        if row.section == "cross-dataset":
            assert cfg.MODEL.TEST_NUM_CLASSES == [500, 365] and cfg.MODEL.MASK_ON is False
        if row.eval_overrides and row.section == "real-time" and "800x1333" not in row.name:
            assert (cfg.INPUT.MIN_SIZE_TEST, cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST) == (640, 0.3)
