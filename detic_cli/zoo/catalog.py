"""The original Detic model zoo as frozen records: 26 rows in 5 sections over 22 weight files, the
third-party backbones the configs start from, and the unpublished stages some rows fine-tune from.

The facts are data, shipped as `detic_cli.metadata/zoo.json` (the repository's `metadata/zoo.json`):
they come from the original `docs/MODEL_ZOO.md` (training time on 8 V100s, metrics in percent, run
time in ms on a Titan RTX) and its configs, and tests/zoo/test_catalog.py checks every row against
that file. This module holds the record types and the loader only. Rows that share a weight URL hold
the same `Asset`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import PurePosixPath
from typing import Any

from detic_cli.errors import DeticError
from detic_cli.package_data import read_metadata
from detic_cli.zoo.assets import Asset

ZOO_FILE = "zoo.json"


@dataclass(frozen=True)
class Metrics:
    """One row's numbers (percent; None where its table has no such column). mask_ap/_novel/_rare:
    LVIS mask mAP (all, novel = rare classes unseen in training, rare); box_ap/_rare: LVIS box mAP;
    box_ap50/_novel: OV-COCO generalized box mAP50 (all, novel); o365_box_ap: Objects365 box mAP;
    oid_box_ap50: OpenImages box mAP50; lvis_box_ap: LVIS box mAP of the real-time table;
    run_time_ms: milliseconds per image on a Titan RTX."""

    mask_ap: float | None = None
    mask_ap_novel: float | None = None
    mask_ap_rare: float | None = None
    box_ap: float | None = None
    box_ap_rare: float | None = None
    box_ap50: float | None = None
    box_ap50_novel: float | None = None
    o365_box_ap: float | None = None
    oid_box_ap50: float | None = None
    lvis_box_ap: float | None = None
    run_time_ms: float | None = None

    def as_dict(self) -> dict[str, float]:
        """Only the columns this row has."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class ZooRow:
    """One row of the zoo tables.

    name: unique id, `<section>/<title>`; title: the row's name in its table; section: a SECTIONS key.
    config: file name of its config, the same under the project's `configs/` and the original's.
    weights: the released checkpoint; training_time: hours on 8 V100s as printed ("17h"), None if
    not given; init: name of the backbone, row weights or unpublished stage it fine-tunes from.
    eval_overrides: KEY=VALUE words the table's numbers were measured with on top of the config.
    vocab: the built-in vocabulary to detect with by default.
    """

    name: str
    title: str
    section: str
    config: str
    weights: Asset
    training_time: str | None
    metrics: Metrics
    init: str
    eval_overrides: tuple[str, ...] = ()
    vocab: str = "lvis"

    @property
    def stem(self) -> str:
        """The config/checkpoint stem, e.g. `BoxSup-C2_L_CLIP_SwinB_896b32_4x`."""
        return self.config.removesuffix(".yaml")

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out.update(url=self.weights.url, filename=self.weights.filename, metrics=self.metrics.as_dict(),
                   eval_overrides=list(self.eval_overrides))
        del out["weights"]
        return out


@dataclass(frozen=True)
class Backbone:
    """A third-party pretrained backbone that configs start from. original_weights: how the
    original config names it (MODEL.WEIGHTS, or `timm:NAME` for MODEL.TIMM.PRETRAINED);
    needs_conversion: the original converted it to detectron2 keys first (`detic convert-pretrained`);
    converter: the key layout of its file, which `detic zoo pull` maps to detector keys (a layout of
    `detic_cli.checkpoint.convert`: timm-resnet, swin, convnext, msra-pkl, d2-resnet)."""

    name: str
    title: str
    weights: Asset
    original_weights: str
    needs_conversion: bool
    converter: str

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out.update(section="backbones", url=self.weights.url, filename=self.weights.filename)
        del out["weights"]
        return out


@dataclass(frozen=True)
class Stage:
    """A training stage whose weights were never published but which a row fine-tunes from:
    name (= its config stem), config file name, and its own init."""

    name: str
    config: str
    init: str


def _asset(entry: dict[str, Any], files: dict[str, Asset]) -> Asset:
    """The weight file of one record, one object per URL however many records use it."""
    url = entry["url"]
    filename = entry.get("filename") or PurePosixPath(url).name
    return files.setdefault(url, Asset(filename, url, sha256=entry.get("sha256"), size=entry.get("size")))


def _row(entry: dict[str, Any], files: dict[str, Asset]) -> ZooRow:
    return ZooRow(
        name=entry["name"], title=entry["title"], section=entry["section"], config=entry["config"],
        weights=_asset(entry, files), training_time=entry["training_time"], metrics=Metrics(**entry["metrics"]),
        init=entry["init"], eval_overrides=tuple(entry.get("eval_overrides", ())), vocab=entry["vocab"],
    )


def _backbone(entry: dict[str, Any], files: dict[str, Asset]) -> Backbone:
    return Backbone(name=entry["name"], title=entry["title"], weights=_asset(entry, files),
                    original_weights=entry["original_weights"], needs_conversion=bool(entry["needs_conversion"]),
                    converter=entry["converter"])


def _load() -> tuple[str, dict[str, str], tuple[Backbone, ...], tuple[Stage, ...], tuple[ZooRow, ...]]:
    """(default model, sections, backbones, stages, rows) from the shipped zoo.json."""
    data, files = read_metadata(ZOO_FILE), {}
    try:
        return (str(data["default_model"]), dict(data["sections"]),
                tuple(_backbone(e, files) for e in data["backbones"]), tuple(Stage(**e) for e in data["stages"]),
                tuple(_row(e, files) for e in data["rows"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise DeticError(f"built-in data detic_cli.metadata/{ZOO_FILE} is damaged in this install "
                         f"({type(exc).__name__}: {exc}); reinstall detic") from exc


DEFAULT_MODEL, SECTIONS, BACKBONES, STAGES, ROWS = _load()


def weight_files() -> dict[str, Asset]:
    """The distinct released checkpoints, by stem, in table order (22 files for 26 rows)."""
    out: dict[str, Asset] = {}
    for row in ROWS:
        out.setdefault(row.stem, row.weights)
    return out


def rows_for(stem: str) -> list[ZooRow]:
    """Every row evaluating the checkpoint `stem`."""
    return [row for row in ROWS if row.stem == stem]
