"""Training datasets by the names the original configs use, in the original layout under $DETIC_DATASETS.

A name resolves to its annotation json, image root, loader style ("lvis": LVIS-format json read the
way Detic reads it, also used for ImageNet and caption data; "coco": COCO json read the way
detectron2 reads it) and the supervision it usually gives (box, image, captiontag). The spec forms
`lvis:ANN.json:IMAGES_DIR` and `coco:ANN.json:IMAGES_DIR` train on any file of those formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from detic_cli.data.catalog import ENV_VAR, datasets_root
from detic_cli.errors import DeticError

SPEC_STYLES = ("coco", "lvis")


@dataclass(frozen=True)
class TrainLayout:
    """Paths relative to the datasets root; `prepare` is the `detic data prepare` target that makes the json."""

    annotation: str
    image_root: str
    style: str
    ann_type: str
    prepare: str | None = None
    note: str = ""


@dataclass(frozen=True)
class TrainDataset:
    name: str
    annotation: Path
    image_root: Path
    style: str  # "lvis" or "coco" (how the json is read)
    ann_type: str  # usual supervision: "box", "image" or "captiontag"


TRAIN_LAYOUTS: dict[str, TrainLayout] = {
    "lvis_v1_train": TrainLayout("lvis/lvis_v1_train.json", "coco", "lvis", "box",
                                 note="download lvis_v1_train.json from lvisdataset.org"),
    "lvis_v1_train_norare": TrainLayout("lvis/lvis_v1_train_norare.json", "coco", "lvis", "box", "lvis-norare"),
    "lvis_v1_train+coco": TrainLayout("lvis/lvis_v1_train+coco_mask.json", "coco", "lvis", "box", "lvis-coco"),
    "lvis_v1_train_22k": TrainLayout("lvis/lvis_v1_train_lvis-22k.json", "coco", "lvis", "box",
                                     note="made by the original tools/create_lvis_21k.py"),
    "imagenet_lvis_v1": TrainLayout("imagenet/annotations/imagenet_lvis_image_info.json", "imagenet/ImageNet-LVIS",
                                    "lvis", "image", "imagenet-lvis"),
    "imagenet_lvis-22k": TrainLayout("imagenet/annotations/imagenet-22k_image_info_lvis-22k.json",
                                     "imagenet/ImageNet-LVIS", "lvis", "image", "imagenet-lvis"),
    "cc3m_v1_train": TrainLayout("cc3m/train_image_info.json", "cc3m/training", "lvis", "captiontag", "cc3m-tags"),
    "cc3m_v1_train_tags": TrainLayout("cc3m/train_image_info_tags.json", "cc3m/training", "lvis", "captiontag",
                                      "cc3m-tags"),
    "coco_zeroshot_train_oriorder": TrainLayout("coco/zero-shot/instances_train2017_seen_2_oriorder.json",
                                                "coco/train2017", "coco", "box", "coco-zeroshot"),
    "coco_caption_train_tags": TrainLayout("coco/annotations/captions_train2017_tags_allcaps.json", "coco/train2017",
                                           "lvis", "captiontag", "coco-caption-tags"),
    "coco_2017_train": TrainLayout("coco/annotations/instances_train2017.json", "coco/train2017", "coco", "box",
                                   note="download it from cocodataset.org"),
}  # fmt: skip


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
        return _from_spec(spec, style, rest, check, check_images)
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


def _how_to_make(layout: TrainLayout) -> str:
    if layout.prepare:
        return f"run `detic data prepare {layout.prepare}` to make it"
    return layout.note or "see the original datasets/README.md"


def _from_spec(spec: str, style: str, rest: str, check: bool, check_images: bool) -> TrainDataset:
    ann, sep, images = rest.rpartition(":")
    if not sep or not ann or not images:
        raise DeticError(f"training dataset {spec!r}: expected {style}:ANN.json:IMAGES_DIR")
    dataset = TrainDataset(spec, Path(ann).expanduser(), Path(images).expanduser(), style, "box")
    if check and not dataset.annotation.is_file():
        raise DeticError(f"training dataset {spec}: annotation file {dataset.annotation} not found")
    if check and check_images and not dataset.image_root.is_dir():
        raise DeticError(f"training dataset {spec}: image folder {dataset.image_root} not found")
    return dataset
