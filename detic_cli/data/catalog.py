"""Every dataset by name, in the original Detic layout under `DETIC_DATASETS` (./datasets): one registry.

A record carries what evaluation needs (evaluator kind, annotation candidates, masks, extra files) and
what training needs (reader style: "lvis", LVIS-format json read the way Detic reads it, also used for
ImageNet and caption data, or "coco", COCO json read the way detectron2 reads it; the supervision it
usually gives: box, image, captiontag; the `detic data prepare` target that makes its json). A name
resolves to its annotation file and image root; `coco:ANN.json:IMAGES_DIR` and `lvis:ANN.json:IMAGES_DIR`
name any file in those formats. A missing file is a `DeticError` that lists what is expected where.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from detic_cli.errors import DeticError

ENV_VAR = "DETIC_DATASETS"
SPEC_KINDS = ("coco", "lvis")
SPEC_STYLES = ("coco", "lvis")


@dataclass(frozen=True)
class DatasetRecord:
    """Paths relative to the datasets root; the first existing annotation candidate is used.

    `kind` (evaluator: lvis, coco, ovcoco, objects365, oid) is set for evaluation datasets, `style` (json
    reader) for training datasets; `prepare` is the `detic data prepare` target that makes the json."""

    annotations: tuple[str, ...]
    image_root: str
    kind: str | None = None
    has_masks: bool = False
    extra: dict[str, str] = field(default_factory=dict)
    style: str | None = None
    ann_type: str = "box"
    prepare: str | None = None
    note: str = ""

    @property
    def annotation(self) -> str:
        return self.annotations[0]


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str
    annotation: Path
    image_root: Path
    has_masks: bool
    extra: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainDataset:
    name: str
    annotation: Path
    image_root: Path
    style: str  # "lvis" or "coco" (how the json is read)
    ann_type: str  # usual supervision: "box", "image" or "captiontag"


def _eval(kind: str, annotations: tuple[str, ...], image_root: str, has_masks: bool, **kw) -> DatasetRecord:
    return DatasetRecord(annotations, image_root, kind=kind, has_masks=has_masks, **kw)


def _train(annotation: str, image_root: str, style: str, ann_type: str, prepare: str | None = None,
           note: str = "") -> DatasetRecord:
    return DatasetRecord((annotation,), image_root, style=style, ann_type=ann_type, prepare=prepare, note=note)


REGISTRY: dict[str, DatasetRecord] = {
    "lvis_v1_val": _eval("lvis", ("lvis/lvis_v1_val.json",), "coco", True,
                         note="images: coco/val2017/ (from each image's coco_url)"),
    "lvis_v1_minival": _eval("lvis", ("lvis/lvis_v1_minival.json",), "coco", True,
                             note="images: coco/val2017/ (from each image's coco_url)"),
    "coco_2017_val": _eval("coco", ("coco/annotations/instances_val2017.json",), "coco/val2017", True),
    "coco_generalized_zeroshot_val": _eval(
        "ovcoco", ("coco/zero-shot/instances_val2017_all_2_oriorder.json",), "coco/val2017", False,
        note="made by tools/get_coco_zeroshot_oriorder.py from the OVR-CNN split instances_val2017_all_2.json",
    ),
    "objects365_v2_val": _eval(
        "objects365",
        ("objects365/annotations/zhiyuan_objv2_val_fixname.json", "objects365/zhiyuan_objv2_val_fixname.json",
         "objects365/annotations/zhiyuan_objv2_val.json"),
        "objects365/val", False,
        note="the name-fixed file (tools/fix_o365_names.py) or the original; ids and boxes are the same",
    ),
    "oid_val_expanded": _eval(
        "oid", ("oid/annotations/oid_challenge_2019_val_expanded.json",), "oid/images/validation", False,
        extra={"hierarchy": "oid/annotations/challenge-2019-label500-hierarchy.json"},
        note="converted as UniDet's DATASETS.md describes",
    ),
    "lvis_v1_train": _train("lvis/lvis_v1_train.json", "coco", "lvis", "box",
                            note="download lvis_v1_train.json from lvisdataset.org"),
    "lvis_v1_train_norare": _train("lvis/lvis_v1_train_norare.json", "coco", "lvis", "box", "lvis-norare"),
    "lvis_v1_train+coco": _train("lvis/lvis_v1_train+coco_mask.json", "coco", "lvis", "box", "lvis-coco"),
    "lvis_v1_train_22k": _train("lvis/lvis_v1_train_lvis-22k.json", "coco", "lvis", "box",
                                note="made by the original tools/create_lvis_21k.py"),
    "imagenet_lvis_v1": _train("imagenet/annotations/imagenet_lvis_image_info.json", "imagenet/ImageNet-LVIS",
                               "lvis", "image", "imagenet-lvis"),
    "imagenet_lvis-22k": _train("imagenet/annotations/imagenet-22k_image_info_lvis-22k.json",
                                "imagenet/ImageNet-LVIS", "lvis", "image", "imagenet-lvis"),
    "cc3m_v1_train": _train("cc3m/train_image_info.json", "cc3m/training", "lvis", "captiontag", "cc3m-tags"),
    "cc3m_v1_train_tags": _train("cc3m/train_image_info_tags.json", "cc3m/training", "lvis", "captiontag",
                                 "cc3m-tags"),
    "coco_zeroshot_train_oriorder": _train("coco/zero-shot/instances_train2017_seen_2_oriorder.json",
                                           "coco/train2017", "coco", "box", "coco-zeroshot"),
    "coco_caption_train_tags": _train("coco/annotations/captions_train2017_tags_allcaps.json", "coco/train2017",
                                      "lvis", "captiontag", "coco-caption-tags"),
    "coco_2017_train": _train("coco/annotations/instances_train2017.json", "coco/train2017", "coco", "box",
                              note="download it from cocodataset.org"),
}  # fmt: skip

# the evaluation datasets (an evaluator kind) and the training datasets (a json reader style)
LAYOUTS: dict[str, DatasetRecord] = {name: r for name, r in REGISTRY.items() if r.kind is not None}
TRAIN_LAYOUTS: dict[str, DatasetRecord] = {name: r for name, r in REGISTRY.items() if r.style is not None}


def datasets_root(root: str | Path | None = None) -> Path:
    """`root`, else $DETIC_DATASETS, else ./datasets."""
    return Path(root if root is not None else os.environ.get(ENV_VAR, "datasets")).expanduser()


def dataset_names() -> list[str]:
    return list(LAYOUTS)


def resolve_dataset(spec: str, *, root: str | Path | None = None, check: bool = True) -> Dataset:
    """A registered name, or `coco:ANN.json:IMAGES_DIR` / `lvis:ANN.json:IMAGES_DIR`."""
    kind, sep, rest = spec.partition(":")
    if sep and kind in SPEC_KINDS:
        return _eval_from_spec(spec, kind, rest, check)
    if spec not in LAYOUTS:
        raise DeticError(
            f"unknown dataset {spec!r}: use one of {', '.join(LAYOUTS)}, "
            "or coco:ANN.json:IMAGES_DIR / lvis:ANN.json:IMAGES_DIR"
        )
    return _from_layout(spec, LAYOUTS[spec], datasets_root(root), check)


def _eval_from_spec(spec: str, kind: str, rest: str, check: bool) -> Dataset:
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


def _from_layout(name: str, layout: DatasetRecord, root: Path, check: bool) -> Dataset:
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


def train_dataset_names() -> list[str]:
    return list(TRAIN_LAYOUTS)


def resolve_train_dataset(
    spec: str, *, root: str | Path | None = None, check: bool = True, check_images: bool = True
) -> TrainDataset:
    """A registered name or `lvis:ANN.json:IMAGES_DIR` / `coco:ANN.json:IMAGES_DIR`.

    With `check`, a missing annotation file (or, with `check_images`, image folder) is a one-line
    DeticError naming the expected path and the `detic data prepare TARGET` command that makes it.
    """
    style, sep, rest = spec.partition(":")
    if sep and style in SPEC_STYLES:
        return _train_from_spec(spec, style, rest, check, check_images)
    layout = TRAIN_LAYOUTS.get(spec)
    if layout is None:
        raise DeticError(f"unknown training dataset {spec!r} in DATASETS.TRAIN: use one of "
                         f"{', '.join(TRAIN_LAYOUTS)}, or lvis:ANN.json:IMAGES_DIR / coco:ANN.json:IMAGES_DIR")
    base = datasets_root(root)
    dataset = TrainDataset(spec, base / layout.annotation, base / layout.image_root, layout.style, layout.ann_type)
    if check:
        if not dataset.annotation.is_file():
            raise DeticError(f"training dataset {spec}: {dataset.annotation} not found ({_how_to_make(layout)}; "
                             f"set {ENV_VAR} to the datasets root)")
        if check_images and not dataset.image_root.is_dir():
            raise DeticError(f"training dataset {spec}: image folder {dataset.image_root} not found "
                             f"(set {ENV_VAR} to the datasets root; layout as in the original datasets/README.md)")
    return dataset


def _how_to_make(layout: DatasetRecord) -> str:
    if layout.prepare:
        return f"run `detic data prepare {layout.prepare}` to make it"
    return layout.note or "see the original datasets/README.md"


def _train_from_spec(spec: str, style: str, rest: str, check: bool, check_images: bool) -> TrainDataset:
    ann, sep, images = rest.rpartition(":")
    if not sep or not ann or not images:
        raise DeticError(f"training dataset {spec!r}: expected {style}:ANN.json:IMAGES_DIR")
    dataset = TrainDataset(spec, Path(ann).expanduser(), Path(images).expanduser(), style, "box")
    if check and not dataset.annotation.is_file():
        raise DeticError(f"training dataset {spec}: annotation file {dataset.annotation} not found")
    if check and check_images and not dataset.image_root.is_dir():
        raise DeticError(f"training dataset {spec}: image folder {dataset.image_root} not found")
    return dataset
