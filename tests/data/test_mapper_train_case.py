"""`detic train`'s dataset mapper, augmentation off, turns LVIS-format records (polygons; image labels with a
caption) into exactly the batch elements of the training-parity cases (../shared/parity/train_cases)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from detic_cli.config import load_config
from detic_cli.data.build import build_train_mapper, dataset_ann_types, train_records
from detic_cli.structures.masks import PolygonMasks

NO_AUGMENTATION = ["INPUT.CUSTOM_AUG=''", "INPUT.MIN_SIZE_TRAIN=(0,)", "INPUT.RANDOM_FLIP='none'",
                   "INPUT.CROP.ENABLED=False", "DATALOADER.USE_DIFF_BS_SIZE=False"]
CAPTIONS = ["an astronaut holding a flag", "a cat on a rug"]


def _write_datasets(case: dict, folder, tmp_path) -> tuple[str, str]:
    """The case's images and annotations as an LVIS-format box json and an image-label json (class index k is
    the k-th category id of the case's cat_info.json)."""
    cats = sorted(({"id": c["id"], "name": c["name"]} for c in json.loads((folder / "cat_info.json").read_text())),
                  key=lambda c: c["id"])
    ids = [c["id"] for c in cats]
    images, anns, labelled = [], [], []
    for i, el in enumerate(case["batch"]):
        shutil.copy(folder / el["image"], tmp_path / el["image"])
        image = {"id": i + 1, "file_name": el["image"], "height": el["height"], "width": el["width"]}
        images.append(image)
        labelled.append({**image, "pos_category_ids": [ids[c] for c in el["pos_category_ids"]],
                         "captions": [CAPTIONS[i]]})
        for k, (box, cls) in enumerate(zip(el["gt_boxes"], el["gt_classes"], strict=True)):
            x0, y0, x1, y1 = box
            polygons = el["gt_polygons"][k] if "gt_polygons" in el else [[x0, y0, x1, y0, x1, y1]]
            anns.append({"id": 10 * i + k + 1, "image_id": i + 1, "category_id": ids[cls], "iscrowd": 0,
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                         "segmentation": polygons})
    box_json, label_json = tmp_path / "boxes.json", tmp_path / "labels.json"
    box_json.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    label_json.write_text(json.dumps({"images": labelled, "annotations": [], "categories": cats}))
    return f"lvis:{box_json}:{tmp_path}", f"lvis:{label_json}:{tmp_path}"


@pytest.mark.parametrize("name", ["r18_cascade_box_fed", "c4_res5_box_ovcoco"])
def test_mapper_gives_the_case_batch(name, shared_dir, tmp_path):
    folder = shared_dir / "parity/train_cases" / name
    case = json.loads((folder / "case.json").read_text())
    boxes, labels = _write_datasets(case, folder, tmp_path)
    cfg = load_config(shared_dir / "detic-reference/configs" / case["config"],
                      case["overrides"] + NO_AUGMENTATION + [
                          f"DATASETS.TRAIN=('{boxes}', '{labels}')", "WITH_IMAGE_LABELS=True",
                          "DATALOADER.DATASET_ANN=['box', 'captiontag']", "DATALOADER.USE_TAR_DATASET=False"])
    ann_types = dataset_ann_types(cfg)
    records, _ = train_records(cfg, ann_types)
    mapper = build_train_mapper(cfg, ann_types, records)
    assert cfg.INPUT.MASK_FORMAT == "polygon" and len(records) == 2 * len(case["batch"])
    for record in records:
        element = mapper(record, np.random.default_rng(0))
        i = record["image_id"] - 1
        expected, image = case["batch"][i], case["images"][i]
        rgb = np.asarray(Image.open(folder / image["file"]).convert("RGB"))
        pixels = rgb[:, :, ::-1] if case["input_format"] == "BGR" else rgb
        np.testing.assert_array_equal(element["image"].numpy(), pixels.transpose(2, 0, 1))
        assert (element["height"], element["width"]) == (expected["height"], expected["width"])
        assert element["instances"].image_size == (expected["height"], expected["width"])
        assert element["pos_category_ids"] == expected["pos_category_ids"]
        assert element["dataset_source"] == record["dataset_source"]
        instances = element["instances"]
        if record["dataset_source"] == 1:
            assert element["ann_type"] == "captiontag" and element["captions"] == [CAPTIONS[i]]
            assert len(instances) == 0
            continue
        assert element["ann_type"] == expected["ann_type"] == "box" and "captions" not in element
        np.testing.assert_allclose(instances.gt_boxes.tensor.numpy(), expected["gt_boxes"], rtol=0, atol=1e-4)
        assert instances.gt_classes.tolist() == expected["gt_classes"]
        if cfg.MODEL.MASK_ON:
            assert isinstance(instances.gt_masks, PolygonMasks)
            got = [[p.tolist() for p in polys] for polys in instances.gt_masks.polygons]
            assert len(got) == len(expected["gt_polygons"])
            for ours, ref in zip(got, expected["gt_polygons"], strict=True):
                assert len(ours) == len(ref)
                for p, q in zip(ours, ref, strict=True):
                    np.testing.assert_allclose(p, q, rtol=0, atol=1e-9)
        else:
            assert not instances.has("gt_masks")


def test_mask_formats(tmp_path):
    """polygon keeps polygons (moved by the augmentation); bitmask rasterizes them at the output size; an image
    with RLE annotations gets bitmasks whatever the format; an unknown format is refused up front."""
    import torch

    from detic_cli.data.augment import RandomFlip
    from detic_cli.data.catalog import resolve_train_dataset
    from detic_cli.data.datasets import load_dataset
    from detic_cli.data.mapper import TrainMapper
    from detic_cli.data.synthetic import IMAGE_DIR, make_detection_dataset
    from detic_cli.errors import DeticError

    ann = make_detection_dataset(tmp_path, num_images=4, size=64, seed=1, style="coco", rle_every=2)
    records = load_dataset(resolve_train_dataset(f"coco:{ann}:{tmp_path / IMAGE_DIR}"), with_masks=True).records
    polygon_only = next(r for r in records if not any(isinstance(s, dict) for s in r["segmentations"]))
    with_rle = next(r for r in records if any(isinstance(s, dict) for s in r["segmentations"]))

    def mapped(record, fmt):
        mapper = TrainMapper(augmentations=[[RandomFlip(prob=1.0)]], image_format="RGB", ann_types=["box"],
                             with_masks=True, mask_format=fmt)
        return mapper(record, np.random.default_rng(0))["instances"]

    as_polygons, as_bits = mapped(polygon_only, "polygon"), mapped(polygon_only, "bitmask")
    assert isinstance(as_polygons.gt_masks, PolygonMasks) and as_bits.gt_masks.dtype == torch.bool
    h, w = as_polygons.image_size
    first = np.asarray(polygon_only["segmentations"][0][0], dtype=np.float64)
    np.testing.assert_allclose(as_polygons.gt_masks.polygons[0][0][0::2], w - first[0::2])  # flipped
    assert torch.equal(as_polygons.gt_masks.to_bitmasks(h, w), as_bits.gt_masks)
    assert mapped(with_rle, "polygon").gt_masks.dtype == torch.bool
    with pytest.raises(DeticError, match="MASK_FORMAT"):
        TrainMapper(augmentations=[[]], image_format="RGB", ann_types=["box"], with_masks=True, mask_format="rle")
