"""`imagenet-lvis`: image-labelled ImageNet-21K json files (original `tools/create_imagenetlvis_json.py`,
`get_imagenet_21k_full_tar_json.py` and `create_lvis_21k.py`).

Each class (WordNet id) is named through WordNet 3.0 (`n02691156` -> `airplane.n.01`) and labelled
with the category of that synset in the original 22047-class list (LVIS ids 1..1203 for the 997
classes whose synset is an LVIS category, ids 1204.. for the rest); classes whose synset is not in
the list are skipped. Two files, one pass over the images:
- `imagenet_lvis_image_info.json` (dataset `imagenet_lvis_v1`): images of the LVIS classes, LVIS v1
  categories with `image_count` = images per class in this file;
- `imagenet-22k_image_info_lvis-22k.json` (dataset `imagenet_lvis-22k`): every class, the combined
  22047-class category list (its names are the vocabulary of the 21K models:
  `detic build-vocab --ann THIS_FILE --out datasets/metadata/lvis-21k_clip_a+cname.npy`).
Image records: `id`, `pos_category_ids` ([category id]), `height`, `width`, and `file_name` (class
folders) or `tar_index` (tar files, read in place; see imagenet_scan).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from detic_cli.data.prepare import metadata
from detic_cli.data.prepare.base import Progress, Target, begin, output_paths
from detic_cli.data.prepare.imagenet_scan import ClassSource, class_images, find_class_sources
from detic_cli.data.prepare.jsonio import dataset_json_writer
from detic_cli.data.prepare.wordnet import noun_synsets, wnid_offset
from detic_cli.errors import DeticError

LVIS_JSON = "imagenet/annotations/imagenet_lvis_image_info.json"
FULL_JSON = "imagenet/annotations/imagenet-22k_image_info_lvis-22k.json"
NUM_LVIS = 1203

TARGET = Target(
    name="imagenet-lvis",
    summary="ImageNet-21K image labels: the LVIS classes, and all 21K classes with the 22047-class list",
    inputs=(("imagenet/ImageNet-21K/", "imagenet/ImageNet-21k/", "imagenet/ImageNet-LVIS/"),),
    outputs=(LVIS_JSON, FULL_JSON),
    source_hint="put the ImageNet-21K per-class tar files (image-net.org) as imagenet/ImageNet-21K/nXXXXXXXX.tar "
                "(or extracted class folders imagenet/ImageNet-21K/nXXXXXXXX/)",
    downloads=("lvis_v1_train_cat_info.json", "lvis_22k_categories.py", "wordnet.zip"),
)


def class_labels(sources: list[ClassSource], categories: list[dict[str, Any]],
                 progress: Progress) -> dict[str, int]:
    """WordNet id -> category id in `categories` (matched by synset name) for the classes found."""
    by_synset = {c["synset"]: c["id"] for c in categories}
    synsets = noun_synsets(metadata.wordnet_zip(), [wnid_offset(s.wnid) for s in sources])
    labels = {}
    for source in sources:
        synset = synsets.get(wnid_offset(source.wnid))
        if synset is not None and synset.name in by_synset:
            labels[source.wnid] = by_synset[synset.name]
    skipped = [s.wnid for s in sources if s.wnid not in labels]
    if skipped:
        progress.note(f"imagenet-lvis: {len(skipped)} class(es) not in the 22047-class list skipped "
                      f"({', '.join(skipped[:5])}{', ...' if len(skipped) > 5 else ''})")
    return labels


def prepare(root: Path, *, force: bool, progress: Progress) -> list[Path]:
    """Write both json files (see the module docstring); returns their paths."""
    outputs = output_paths(TARGET, root)
    if not begin(TARGET, root, force=force, progress=progress):
        return outputs
    sources = find_class_sources(root)
    if not sources:
        raise DeticError(f"imagenet-lvis: no class tars or folders (nXXXXXXXX) under {root / 'imagenet'} "
                         f"({TARGET.source_hint})")
    full_cats = metadata.lvis_22k_categories()
    lvis_cats = metadata.lvis_categories()
    labels = class_labels(sources, full_cats, progress)
    counts = _write(root, sources, labels, (lvis_cats, full_cats), outputs, progress)
    progress.note(f"imagenet-lvis: {counts[0]} images of LVIS classes, {counts[1]} of all classes")
    return outputs


def _write(root: Path, sources: list[ClassSource], labels: dict[str, int],
           categories: tuple[list[dict[str, Any]], list[dict[str, Any]]], outputs: list[Path],
           progress: Progress) -> tuple[int, int]:
    """Stream both files in one pass; categories = (LVIS v1, 22047-class); returns the image counts."""
    lvis_cats, full_cats = categories
    per_class = dict.fromkeys((c["id"] for c in lvis_cats), 0)
    with ExitStack() as stack:
        lvis = stack.enter_context(dataset_json_writer(outputs[0]))
        full = stack.enter_context(dataset_json_writer(outputs[1], {"categories": full_cats}))
        used = [s for s in sources if s.wnid in labels]
        for source, records in class_images(root, used, progress=progress):
            cat_id = labels[source.wnid]
            for record in records:
                full.add({"id": full.count + 1, "pos_category_ids": [cat_id], **record})
                if cat_id <= NUM_LVIS and cat_id in per_class:
                    lvis.add({"id": lvis.count + 1, "pos_category_ids": [cat_id], **record})
                    per_class[cat_id] += 1
        lvis.tail = {"categories": [{**c, "image_count": per_class[c["id"]]} for c in lvis_cats],
                     "annotations": []}
        full.tail = {"annotations": []}
    return lvis.count, full.count
