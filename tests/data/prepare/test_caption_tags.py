"""cc3m-tags and coco-caption-tags: class names and synonyms found in captions, captions kept."""

from __future__ import annotations

import random

import pytest

from detic_cli.data.prepare import cc3m_tags, coco_captions
from detic_cli.data.prepare.tags import CaptionTagger, plain_name
from detic_cli.errors import DeticError
from tests.data.prepare.conftest import LVIS, jpeg_bytes, load, write_json


def reference_tags(categories, caption: str) -> list[int]:
    """The original tool's rule, written out literally: " name " inside, or at either end."""
    caption = caption.lower()
    out = []
    for cat in categories:
        names = [" " + plain_name(s) + " " for s in cat["synonyms"]]
        if any(c in caption or caption.startswith(c[1:]) or caption.endswith(c[:-1]) for c in names):
            out.append(cat["id"])
    return out


def test_tagger_equals_the_original_rule(lvis_cats):
    tagger = CaptionTagger(lvis_cats)
    words = ["a", "dog", "spray", "can", "bat", "hot", "the", "Person", "  ", "", "ski", "bike", "cat.", "aerosol"]
    rng = random.Random(0)
    captions = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 7))) for _ in range(300)]
    captions += ["dog", "dog ", " dog", "a dog", "dog runs", "spray can", "the spray can here", "Bat flying"]
    for caption in captions:
        assert tagger(caption) == reference_tags(lvis_cats, caption), caption
    assert tagger("someone holding a spray can today") == [LVIS["aerosol_can"], 26, 192]  # synonym, atomizer, can
    assert tagger("a bat at night") == [LVIS["bat_(animal)"]]  # "bat_(animal)" -> "bat"
    assert tagger("dog") == []  # the whole caption alone does not count, as in the original


def _raw_cc3m(root):
    lines = ["A dog and a cat on the sofa\thttp://x/1.jpg", "spray can art on a wall\thttp://x/2.jpg",
             "nothing to see here\thttp://x/3.jpg", "a person riding a bike\thttp://x/4.jpg",
             "a missing dog image\thttp://x/5.jpg"]
    (root / "cc3m").mkdir(parents=True)
    (root / "cc3m" / "GCC-training.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "cc3m" / "training").mkdir()
    for k, (w, h) in enumerate(((10, 8), (6, 6), (7, 5), (12, 9)), start=1):
        (root / "cc3m" / "training" / f"{k}.jpg").write_bytes(jpeg_bytes(w, h))


def test_cc3m_tags_from_tsv_and_downloaded_images(root, mirror, progress):
    _raw_cc3m(root)
    info_path, tags_path = cc3m_tags.prepare(root, force=False, progress=progress)
    info, tags = load(info_path), load(tags_path)
    assert [(im["id"], im["file_name"], im["height"], im["width"]) for im in info["images"]] == [
        (1, "1.jpg", 8, 10), (2, "2.jpg", 6, 6), (3, "3.jpg", 5, 7), (4, "4.jpg", 9, 12)]  # 5.jpg was never downloaded
    assert len(info["categories"]) == 1203 and info["annotations"] == []
    assert [(im["id"], im["pos_category_ids"], im["captions"]) for im in tags["images"]] == [
        (1, [LVIS["cat"], LVIS["dog"], 982], ["A dog and a cat on the sofa"]),  # 982: sofa
        (2, [LVIS["aerosol_can"], 26, 192], ["spray can art on a wall"]),  # aerosol_can, atomizer, can
        (4, [LVIS["bicycle"], LVIS["person"]], ["a person riding a bike"])]
    assert tags["categories"] == info["categories"] and tags["annotations"] == []


def test_cc3m_reuses_an_existing_image_info(root, mirror, progress, lvis_cats):
    write_json(root / "cc3m" / "train_image_info.json", {"categories": lvis_cats, "annotations": [], "images": [
        {"id": 7, "file_name": "7.jpg", "height": 3, "width": 4, "captions": ["a cow in a field"]}]})
    (root / "cc3m" / "training").mkdir()
    _, tags_path = cc3m_tags.prepare(root, force=False, progress=progress)
    assert [im["pos_category_ids"] for im in load(tags_path)["images"]] == [[LVIS["cow"]]]


def _raw_coco_captions(root, categories):
    ann = root / "coco" / "annotations"
    write_json(ann / "instances_val2017.json", {"images": [], "annotations": [], "categories": categories})
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "height": 10, "width": 10} for i in (1, 2, 3)]
    caps = [(1, "A man on skis."), (1, "Two skis and a hot dog"), (2, "A bicycle leaning"), (3, "an empty room"),
            (2, "a cow")]
    write_json(ann / "captions_train2017.json", {"images": images, "annotations": [
        {"id": 10 + k, "image_id": i, "caption": c} for k, (i, c) in enumerate(caps)]})


def test_coco_caption_tags_use_all_captions_and_lvis_synonyms(root, mirror, progress):
    categories = [{"id": k, "name": n, "supercategory": "x"} for k, n in
                  ((1, "person"), (2, "bicycle"), (21, "cow"), (35, "skis"), (58, "hot dog"))]
    _raw_coco_captions(root, categories)
    [path] = coco_captions.prepare(root, force=False, progress=progress)
    assert path == root / "coco/annotations/captions_train2017_tags_allcaps.json"
    out = load(path)
    synonyms = {c["id"]: c["synonyms"] for c in out["categories"]}
    assert synonyms[1][:2] == ["person", "baby"] and synonyms[58] == ["sausage"] and synonyms[35] == ["ski"]
    assert all(c["frequency"] == "f" for c in out["categories"])
    assert [(im["id"], im["pos_category_ids"], im["captions"]) for im in out["images"]] == [
        (1, [1], ["A man on skis.", "Two skis and a hot dog"]),  # "man" is a person synonym; "skis" is not "ski"
        (2, [2, 21], ["A bicycle leaning", "a cow"])]


def test_coco_caption_tags_refuse_an_unmapped_class(root, mirror, progress):
    _raw_coco_captions(root, [{"id": 90, "name": "toothbrush"}])
    with pytest.raises(DeticError, match="toothbrush"):
        coco_captions.prepare(root, force=False, progress=progress)
