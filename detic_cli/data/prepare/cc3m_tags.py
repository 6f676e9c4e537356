"""`cc3m-tags`: Conceptual Captions 3M as image-labelled data with captions (original
`tools/download_cc.py` json step and `tools/get_cc_tags.py`), dataset `cc3m_v1_train_tags`.

Line k (1-based) of `GCC-training.tsv` (`caption<TAB>url`) is image `cc3m/training/k.jpg`, downloaded
beforehand (this command does not download 3 million images). Two files:
- `cc3m/train_image_info.json`: every readable image (`id` k, `file_name` "k.jpg", `height`,
  `width`, `captions` [caption]); LVIS v1 categories; no annotations. An existing one is reused.
- `cc3m/train_image_info_tags.json`: the images whose caption names an LVIS class (see tags),
  with `pos_category_ids`, captions kept for the caption loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detic_cli.data.prepare import metadata
from detic_cli.data.prepare.base import Progress, Target, begin, output_paths
from detic_cli.data.prepare.images import file_size
from detic_cli.data.prepare.jsonio import read_dataset_json, write_json
from detic_cli.data.prepare.tags import CaptionTagger, tag_images
from detic_cli.errors import DeticError

TSV_NAMES = ("cc3m/GCC-training.tsv", "cc3m/Train_GCC-training.tsv")
IMAGES = "cc3m/training"
INFO = "cc3m/train_image_info.json"
TAGS = "cc3m/train_image_info_tags.json"

TARGET = Target(
    name="cc3m-tags",
    summary="Conceptual Captions image labels from LVIS class names in the captions, captions kept",
    inputs=((*TSV_NAMES, INFO), (IMAGES + "/",)),
    outputs=(INFO, TAGS),
    source_hint="download GCC-training.tsv (ai.google.com/research/ConceptualCaptions) to cc3m/ and its images "
                "as cc3m/training/<line number>.jpg",
    downloads=("lvis_v1_train_cat_info.json",),
)


def read_captions(tsv: Path) -> list[tuple[int, str]]:
    """(line number from 1, caption) of each line of a `caption<TAB>url` file."""
    out = []
    with open(tsv, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            caption, tab, _ = line.rstrip("\n").partition("\t")
            if not tab:
                raise DeticError(f"{tsv}:{number}: expected caption<TAB>url")
            out.append((number, caption))
    return out


def image_records(root: Path, captions: list[tuple[int, str]], progress: Progress) -> list[dict[str, Any]]:
    """Records of the downloaded, readable images; missing or broken ones are left out."""
    records = []
    progress.start("cc3m images", len(captions))
    for number, caption in captions:
        hw = file_size(root / IMAGES / f"{number}.jpg")
        if hw is not None:
            records.append({"id": number, "file_name": f"{number}.jpg", "height": hw[0], "width": hw[1],
                            "captions": [caption]})
        progress.advance(1)
    progress.finish()
    return records


def _info(root: Path, force: bool, categories: list[dict[str, Any]], progress: Progress) -> dict[str, Any]:
    info = root / INFO
    if info.is_file() and not force:
        progress.note(f"cc3m-tags: reusing {info}")
        return read_dataset_json(info)
    tsv = next((root / n for n in TSV_NAMES if (root / n).is_file()), None)
    if tsv is None:
        raise DeticError(f"cc3m-tags: {root / TSV_NAMES[0]} not found ({TARGET.source_hint})")
    records = image_records(root, read_captions(tsv), progress)
    if not records:
        raise DeticError(f"cc3m-tags: no readable images cc3m/training/<line>.jpg under {root} ({TARGET.source_hint})")
    data = {"categories": categories, "images": records, "annotations": []}
    write_json(info, data)
    return data


def prepare(root: Path, *, force: bool, progress: Progress) -> list[Path]:
    outputs = output_paths(TARGET, root)
    if not begin(TARGET, root, force=force, progress=progress):
        return outputs
    data = _info(root, force, metadata.lvis_categories(), progress)
    progress.note(f"cc3m-tags: matching class names in {len(data['images'])} captions")
    tagged = tag_images(data["images"], CaptionTagger(data["categories"]), all_captions=False)
    write_json(outputs[1], {"images": tagged, "categories": data["categories"], "annotations": []})
    progress.note(f"cc3m-tags: {len(tagged)} of {len(data['images'])} images tagged")
    return outputs
