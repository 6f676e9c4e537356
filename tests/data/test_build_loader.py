"""build_train_loader on synthetic data: the batch-element contract, grouping, determinism, resume, workers."""

from __future__ import annotations

import itertools

import pytest
import torch

from detic_cli.config import load_config
from detic_cli.data.build import build_train_loader
from detic_cli.data.synthetic import IMAGE_DIR, make_detection_dataset, make_image_label_dataset
from detic_cli.errors import DeticError
from detic_cli.structures import Boxes, Instances
from detic_cli.structures.masks import PolygonMasks


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_detection_dataset(root, num_images=10, size=64, seed=0, style="lvis")
    make_detection_dataset(root, num_images=8, size=64, seed=1, style="coco", crowd_every=3)
    make_image_label_dataset(root, num_images=10, size=64, seed=2)
    return root


def _detic_cfg(root, *extra: str):
    images = root / IMAGE_DIR
    return load_config(None, [
        f"DATASETS.TRAIN=('lvis:{root / 'detection_lvis.json'}:{images}','lvis:{root / 'image_labels.json'}:{images}')",
        "WITH_IMAGE_LABELS=True", "MODEL.MASK_ON=True", "INPUT.FORMAT=RGB",
        "INPUT.CUSTOM_AUG=EfficientDetResizeCrop", "DATALOADER.SAMPLER_TRAIN=MultiDatasetSampler",
        "DATALOADER.DATASET_RATIO=[1,2]", "DATALOADER.USE_RFS=[True,False]", "DATALOADER.REPEAT_THRESHOLD=0.5",
        "DATALOADER.MULTI_DATASET_GROUPING=True", "DATALOADER.USE_DIFF_BS_SIZE=True", "DATALOADER.DATASET_BS=[2,3]",
        "DATALOADER.DATASET_INPUT_SIZE=[64,32]", "DATALOADER.DATASET_INPUT_SCALE=[[0.5,1.5],[0.5,1.0]]",
        "DATALOADER.DATASET_ANN=['box','image']", "DATALOADER.FILTER_EMPTY_ANNOTATIONS=False",
        "DATALOADER.NUM_WORKERS=0", *extra,
    ])  # fmt: skip


def _take(loader, n):
    return list(itertools.islice(loader, n))


def _check_element(e: dict, size: int) -> None:
    image, inst = e["image"], e["instances"]
    assert image.dtype == torch.uint8 and image.shape[0] == 3 and tuple(image.shape[1:]) == (e["height"], e["width"])
    assert e["height"] <= size and e["width"] <= size
    assert isinstance(inst, Instances) and inst.image_size == (e["height"], e["width"])
    assert isinstance(inst.gt_boxes, Boxes) and inst.gt_classes.dtype == torch.int64
    boxes = inst.gt_boxes.tensor
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= e["width"]).all() and (boxes[:, 3] <= e["height"]).all()
    assert ((boxes[:, 2:] - boxes[:, :2]) > 0).all()
    assert ((inst.gt_classes >= 0) & (inst.gt_classes < 5)).all()
    assert isinstance(e["image_id"], int) and isinstance(e["file_name"], str)


def test_multi_dataset_batches_follow_the_contract(data_root):
    loader = build_train_loader(_detic_cfg(data_root), seed=7)
    kinds = []
    for batch in _take(loader, 12):
        types = {e["ann_type"] for e in batch}
        assert len(types) == 1 and len({e["dataset_source"] for e in batch}) == 1
        kind = types.pop()
        kinds.append(kind)
        assert len(batch) == {"box": 2, "image": 3}[kind]
        assert len({e["height"] <= e["width"] for e in batch}) <= 2
        for e in batch:
            _check_element(e, 64 if kind == "box" else 32)
            polygons = e["instances"].gt_masks  # INPUT.MASK_FORMAT polygon (the default): kept as polygons
            assert isinstance(polygons, PolygonMasks) and len(polygons) == len(e["instances"])
            masks = polygons.to_bitmasks(e["height"], e["width"])
            assert masks.dtype == torch.bool and tuple(masks.shape) == (len(e["instances"]), e["height"], e["width"])
            if kind == "box":
                assert e["pos_category_ids"] == sorted(set(e["instances"].gt_classes.tolist()))
                assert all(m.any() for m in masks)
            else:
                assert len(e["instances"]) == 0 and e["pos_category_ids"] and "captions" not in e
    assert set(kinds) == {"box", "image"}
    assert loader.datasets[0].class_names == ["circle", "square", "triangle", "diamond", "star"]


def test_resume_and_format(data_root):
    full = _take(build_train_loader(_detic_cfg(data_root), seed=3), 6)
    resumed = _take(build_train_loader(_detic_cfg(data_root), seed=3, start_iter=2), 4)
    for a_batch, b_batch in zip(full[2:], resumed):
        assert [e["image_id"] for e in a_batch] == [e["image_id"] for e in b_batch]
        for a, b in zip(a_batch, b_batch):
            assert torch.equal(a["image"], b["image"]) and torch.equal(a["instances"].gt_boxes.tensor,
                                                                        b["instances"].gt_boxes.tensor)
    bgr = _take(build_train_loader(_detic_cfg(data_root, "INPUT.FORMAT=BGR"), seed=3), 1)[0]
    assert torch.equal(bgr[0]["image"], full[0][0]["image"].flip(0))
    other = _take(build_train_loader(_detic_cfg(data_root), seed=4), 6)
    assert [e["image_id"] for b in other for e in b] != [e["image_id"] for b in full for e in b]


def test_two_workers_give_the_same_batches(data_root):
    cfg = _detic_cfg(data_root, "MODEL.MASK_ON=False")
    serial = _take(build_train_loader(cfg, seed=5), 3)
    cfg.DATALOADER.NUM_WORKERS = 2
    parallel = _take(build_train_loader(cfg, seed=5), 3)
    for a_batch, b_batch in zip(serial, parallel):
        assert [e["image_id"] for e in a_batch] == [e["image_id"] for e in b_batch]
        assert all(torch.equal(a["image"], b["image"]) for a, b in zip(a_batch, b_batch))
        assert all(not b["instances"].has("gt_masks") for b in b_batch)


def test_detectron2_style_loader_with_ranks(data_root):
    images = data_root / IMAGE_DIR
    cfg = load_config(None, [
        f"DATASETS.TRAIN=('coco:{data_root / 'detection_coco.json'}:{images}',)", "SOLVER.IMS_PER_BATCH=4",
        "DATALOADER.SAMPLER_TRAIN=RepeatFactorTrainingSampler", "DATALOADER.REPEAT_THRESHOLD=0.3",
        "INPUT.MIN_SIZE_TRAIN=(40,48)", "INPUT.MAX_SIZE_TRAIN=80", "DATALOADER.NUM_WORKERS=0",
    ])  # fmt: skip
    per_rank = [_take(build_train_loader(cfg, seed=1, rank=r, world_size=2), 5) for r in range(2)]
    for batches in per_rank:
        for batch in batches:
            assert len(batch) == 2 and len({e["height"] <= e["width"] for e in batch}) == 1  # aspect grouping
            for e in batch:
                _check_element(e, 80)
                assert e["ann_type"] == "box" and min(e["height"], e["width"]) in (40, 48)
                assert not e["instances"].has("gt_masks") and e["image"].shape[0] == 3
    ids = [[e["image_id"] for b in batches for e in b] for batches in per_rank]
    assert ids[0] != ids[1]
    with pytest.raises(DeticError, match="IMS_PER_BATCH"):
        build_train_loader(cfg, world_size=3)


def test_caption_batches_carry_captions(data_root):
    loader = build_train_loader(_detic_cfg(data_root, "DATALOADER.DATASET_ANN=['box','captiontag']",
                                           "MODEL.MASK_ON=False"), seed=2)
    batch = next(b for b in _take(loader, 8) if b[0]["ann_type"] == "captiontag")
    for e in batch:
        assert e["captions"] and all(isinstance(c, str) and c.startswith("a ") for c in e["captions"])
        assert e["pos_category_ids"] and len(e["instances"]) == 0


def test_every_zoo_config_names_known_datasets_and_recipes():
    from pathlib import Path

    from detic_cli.data.build import dataset_ann_types, train_augmentations
    from detic_cli.data.catalog import resolve_train_dataset

    configs = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
    assert len(configs) >= 20
    for path in configs:
        cfg = load_config(path)
        ann_types = dataset_ann_types(cfg)
        assert len(ann_types) == len(cfg.DATASETS.TRAIN)
        for source, name in enumerate(cfg.DATASETS.TRAIN):
            assert resolve_train_dataset(name, check=False).annotation.suffix == ".json"
            assert train_augmentations(cfg, source), path.name
