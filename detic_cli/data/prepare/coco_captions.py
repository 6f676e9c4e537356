"""`coco-caption-tags`: COCO 2017 train captions as image-labelled data for the open-vocabulary COCO
rows (original `tools/get_cc_tags.py --allcaps --convert_caption --cat_path instances_val2017.json`),
dataset `coco_caption_train_tags`.

Every caption of an image goes into its `captions`; the 80 COCO categories get the synonyms of
their LVIS synset (lvis-api's COCO mapping, hot dog -> sausage) and frequency "f"; an image is
kept when its joined, lower-cased captions name a class (see tags), with `pos_category_ids`.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from detic_cli.data.prepare import metadata
from detic_cli.data.prepare.base import Progress, Target, begin, output_paths
from detic_cli.data.prepare.jsonio import read_dataset_json, write_json
from detic_cli.data.prepare.tags import CaptionTagger, tag_images
from detic_cli.errors import DeticError

CAPTIONS = "coco/annotations/captions_train2017.json"
CATEGORY_FILES = ("coco/annotations/instances_val2017.json", "coco/annotations/instances_train2017.json")
TAGS = "coco/annotations/captions_train2017_tags_allcaps.json"

TARGET = Target(
    name="coco-caption-tags",
    summary="COCO train captions as image labels (class names in the captions) for open-vocabulary COCO",
    inputs=((CAPTIONS,), CATEGORY_FILES),
    outputs=(TAGS,),
    source_hint="download the COCO 2017 annotations (cocodataset.org) to coco/annotations/",
    downloads=("lvis_v1_train_cat_info.json", "coco_to_synset.json"),
)


def coco_categories_with_synonyms(categories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """COCO categories with `synonyms` of their LVIS synset and frequency "f" (unless they have synonyms)."""
    if categories and "synonyms" in categories[0]:
        return categories
    synsets = metadata.coco_synsets()
    synonyms = {c["synset"]: c["synonyms"] for c in metadata.lvis_categories()}
    out = []
    for cat in categories:
        synset = synsets.get(cat["id"])
        if synset not in synonyms:
            raise DeticError(f"coco-caption-tags: COCO category {cat['id']} ({cat.get('name')}) has no LVIS synset "
                             "in the COCO -> LVIS mapping")
        out.append({**cat, "synonyms": synonyms[synset], "frequency": "f"})
    return out


def with_captions(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The images of a COCO captions file, each with the list of its captions (file order)."""
    by_image: dict[int, list[str]] = defaultdict(list)
    for ann in data.get("annotations", []):
        by_image[ann["image_id"]].append(ann["caption"])
    return [{**img, "captions": by_image[img["id"]]} for img in data["images"]]


def prepare(root: Path, *, force: bool, progress: Progress) -> list[Path]:
    outputs = output_paths(TARGET, root)
    if not begin(TARGET, root, force=force, progress=progress):
        return outputs
    cat_file = next(root / n for n in CATEGORY_FILES if (root / n).is_file())
    categories = coco_categories_with_synonyms(read_dataset_json(cat_file)["categories"])
    images = with_captions(read_dataset_json(root / CAPTIONS, keys=("images", "annotations")))
    tagged = tag_images(images, CaptionTagger(categories), all_captions=True)
    write_json(outputs[0], {"images": tagged, "categories": categories, "annotations": []})
    progress.note(f"coco-caption-tags: {len(tagged)} of {len(images)} images tagged")
    return outputs
