"""Evaluation datasets by name, in the original Detic layout under `DETIC_DATASETS` (./datasets).

A name resolves to its annotation file, image root and evaluator kind; `coco:ANN.json:IMAGES_DIR`
and `lvis:ANN.json:IMAGES_DIR` name any file in those formats. A missing file is a `DeticError`
that lists what is expected where.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from detic_cli.errors import DeticError

ENV_VAR = "DETIC_DATASETS"
SPEC_KINDS = ("coco", "lvis")


@dataclass(frozen=True)
class DatasetLayout:
    """Paths relative to the datasets root; the first existing annotation candidate is used."""

    kind: str  # evaluator: lvis, coco, ovcoco, objects365, oid
    annotations: tuple[str, ...]
    image_root: str
    has_masks: bool
    extra: dict[str, str] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str
    annotation: Path
    image_root: Path
    has_masks: bool
    extra: dict[str, Path] = field(default_factory=dict)


LAYOUTS: dict[str, DatasetLayout] = {
    "lvis_v1_val": DatasetLayout("lvis", ("lvis/lvis_v1_val.json",), "coco", True,
                                 note="images: coco/val2017/ (from each image's coco_url)"),
    "lvis_v1_minival": DatasetLayout("lvis", ("lvis/lvis_v1_minival.json",), "coco", True,
                                     note="images: coco/val2017/ (from each image's coco_url)"),
    "coco_2017_val": DatasetLayout("coco", ("coco/annotations/instances_val2017.json",), "coco/val2017", True),
    "coco_generalized_zeroshot_val": DatasetLayout(
        "ovcoco", ("coco/zero-shot/instances_val2017_all_2_oriorder.json",), "coco/val2017", False,
        note="made by tools/get_coco_zeroshot_oriorder.py from the OVR-CNN split instances_val2017_all_2.json",
    ),
    "objects365_v2_val": DatasetLayout(
        "objects365",
        ("objects365/annotations/zhiyuan_objv2_val_fixname.json", "objects365/zhiyuan_objv2_val_fixname.json",
         "objects365/annotations/zhiyuan_objv2_val.json"),
        "objects365/val", False,
        note="the name-fixed file (tools/fix_o365_names.py) or the original; ids and boxes are the same",
    ),
    "oid_val_expanded": DatasetLayout(
        "oid", ("oid/annotations/oid_challenge_2019_val_expanded.json",), "oid/images/validation", False,
        extra={"hierarchy": "oid/annotations/challenge-2019-label500-hierarchy.json"},
        note="converted as UniDet's DATASETS.md describes",
    ),
}  # fmt: skip


def datasets_root(root: str | Path | None = None) -> Path:
    """`root`, else $DETIC_DATASETS, else ./datasets."""
    return Path(root if root is not None else os.environ.get(ENV_VAR, "datasets")).expanduser()


def dataset_names() -> list[str]:
    return list(LAYOUTS)


def resolve_dataset(spec: str, *, root: str | Path | None = None, check: bool = True) -> Dataset:
    """A registered name, or `coco:ANN.json:IMAGES_DIR` / `lvis:ANN.json:IMAGES_DIR`."""
    kind, sep, rest = spec.partition(":")
    if sep and kind in SPEC_KINDS:
        return _from_spec(spec, kind, rest, check)
    if spec not in LAYOUTS:
        raise DeticError(
            f"unknown dataset {spec!r}: use one of {', '.join(LAYOUTS)}, "
            "or coco:ANN.json:IMAGES_DIR / lvis:ANN.json:IMAGES_DIR"
        )
    return _from_layout(spec, LAYOUTS[spec], datasets_root(root), check)


def _from_spec(spec: str, kind: str, rest: str, check: bool) -> Dataset:
    ann, sep, images = rest.rpartition(":")
    if not sep or not ann or not images:
        raise DeticError(f"--dataset {spec}: expected {kind}:ANN.json:IMAGES_DIR")
    dataset = Dataset(spec, kind, Path(ann).expanduser(), Path(images).expanduser(), True)
    if check:
        missing = [f"{p} ({what})" for p, what in ((dataset.annotation, "annotation file"),
                                                   (dataset.image_root, "image folder")) if not p.exists()]
        if missing:
            raise DeticError(f"--dataset {spec}: not found: {'; '.join(missing)}")
    return dataset


def _from_layout(name: str, layout: DatasetLayout, root: Path, check: bool) -> Dataset:
    found = [root / a for a in layout.annotations if (root / a).is_file()]
    annotation = found[0] if found else root / layout.annotations[0]
    extra = {k: root / v for k, v in layout.extra.items()}
    dataset = Dataset(name, layout.kind, annotation, root / layout.image_root, layout.has_masks, extra)
    if check:
        missing = not found or not dataset.image_root.is_dir() or any(not p.is_file() for p in extra.values())
        if missing:
            raise DeticError(expected_files_message(name, root))
    return dataset


def expected_files_message(name: str, root: str | Path | None = None) -> str:
    """One line: which files dataset `name` needs, where, and which of them are missing."""
    layout, base = LAYOUTS[name], datasets_root(root)
    ann = " or ".join(str(base / a) for a in layout.annotations)
    parts = [f"annotations {ann}{_state(any((base / a).is_file() for a in layout.annotations))}",
             f"images {base / layout.image_root}/{_state((base / layout.image_root).is_dir())}"]
    parts += [f"{key} {base / rel}{_state((base / rel).is_file())}" for key, rel in layout.extra.items()]
    note = f"; {layout.note}" if layout.note else ""
    return (f"dataset {name} is not ready under {base}: expected {', '.join(parts)}{note}; set {ENV_VAR} to its "
            "root (layout: the original Detic datasets/README.md)")


def _state(ok: bool) -> str:
    return "" if ok else " (missing)"


def image_file(dataset: Dataset, image: dict[str, object]) -> Path:
    """Path of one image record: `file_name` under the image root, else the tail of `coco_url`."""
    name = image.get("file_name")
    if isinstance(name, str) and name:
        return dataset.image_root / name
    url = image.get("coco_url")
    if isinstance(url, str) and url:
        split_dir = dataset.image_root / "/".join(url.split("/")[-2:])  # root is coco/
        flat = dataset.image_root / url.split("/")[-1]  # root is coco/val2017
        return flat if not split_dir.exists() and flat.exists() else split_dir
    raise DeticError(f"image {image.get('id')} has neither file_name nor coco_url")
