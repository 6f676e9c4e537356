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


@pytest.fixture(scope="module")
def table_rows(shared_dir):
    """(section, title, config, [numbers and times], url) for every row of the original tables."""
    rows, section = [], None
    for line in (shared_dir / "detic-reference" / "MODEL_ZOO.md").read_text().splitlines():
        if line.startswith("## "):
            section = _HEADINGS.get(line[3:].strip())
        match = _ROW.match(line.strip())
        if match:
            cells = [c.strip() for c in match["cells"].split("|")]
            url = re.search(r"\((https://[^)]+)\)", match["cells"])[1]
            rows.append((section, match["title"], match["config"], cells[:3], url))
    return rows


def test_counts():
    assert len(ROWS) == 26 and len(weight_files()) == 22 and len({r.name for r in ROWS}) == 26
    assert [sum(r.section == s for r in ROWS) for s in SECTIONS] == [6, 6, 4, 5, 5]


def test_rows_match_the_original_tables(table_rows):
    assert len(table_rows) == len(ROWS)
    for (section, title, config, cells, url), row in zip(table_rows, ROWS, strict=True):
        assert (row.section, row.title, row.config, row.weights.url) == (section, title, config, url)
        numbers = [float(c) for c in cells if re.fullmatch(r"[\d.]+", c)]
        hours = [c for c in cells if c.endswith("h")]
        assert sorted(row.metrics.as_dict().values()) == sorted(numbers), row.name
        assert row.training_time == (hours[0] if hours else row.training_time)


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
