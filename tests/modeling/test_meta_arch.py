"""CustomRCNN in training mode: loss dictionaries of the C4 (RPN + Res5) and CenterNet2 (CenterNet +
cascade + mask) configs, dispatch on ann_type, and overfitting two small synthetic images."""

from __future__ import annotations

import pytest
import torch

from detic_cli.config import load_config
from detic_cli.engine.build import training_model_data
from detic_cli.errors import DeticError
from detic_cli.modeling.builders import build_model
from detic_cli.structures import Boxes, Instances

C4 = "BoxSup_OVCOCO_CLIP_R50_1x.yaml"
C2_R18 = "BoxSup-C2_LCOCO_CLIP_R18_640b32_4x.yaml"
# Narrower layers and fewer samples than the configs so a CPU step takes a fraction of a second; the
# structure (backbone, proposal generator, heads, losses) is the config's. PIXEL_STD keeps the
# randomly initialised, FrozenBN C4 ResNet's activations in range.
SMALL = {
    C4: ["MODEL.RESNETS.RES2_OUT_CHANNELS=32", "MODEL.RESNETS.WIDTH_PER_GROUP=8", "MODEL.RESNETS.STEM_OUT_CHANNELS=16",
         "MODEL.BACKBONE.FREEZE_AT=0", "MODEL.PIXEL_STD=[57.0,57.0,57.0]", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE=64",
         "MODEL.RPN.PRE_NMS_TOPK_TRAIN=500", "MODEL.RPN.POST_NMS_TOPK_TRAIN=100"],
    C2_R18: ["MODEL.FPN.OUT_CHANNELS=64", "MODEL.ROI_BOX_HEAD.FC_DIM=256", "MODEL.ROI_MASK_HEAD.CONV_DIM=64",
             "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE=32", "MODEL.CENTERNET.PRE_NMS_TOPK_TRAIN=256",
             "MODEL.CENTERNET.POST_NMS_TOPK_TRAIN=128"],
}
CASCADE_LOSSES = {f"loss_{n}_stage{k}" for n in ("cls", "box_reg") for k in range(3)}
CENTERNET_LOSSES = {"loss_centernet_loc", "loss_centernet_agn_pos", "loss_centernet_agn_neg"}


pytestmark = pytest.mark.usefixtures("one_thread")


def _model(shared_dir, name: str, tmp_path, monkeypatch, extra=()):
    monkeypatch.setenv("DETIC_DATASETS", str(tmp_path))
    (tmp_path / "metadata").mkdir(exist_ok=True)  # the federated loss's class frequencies (3 classes)
    (tmp_path / "metadata/lvis_v1_train_cat_info.json").write_text(
        '[{"id": 1, "image_count": 4}, {"id": 2, "image_count": 9}, {"id": 3, "image_count": 1}]')
    overrides = [*SMALL[name], "MODEL.ROI_BOX_HEAD.IGNORE_ZERO_CATS=False", *extra]
    torch.manual_seed(0)
    cfg = load_config(shared_dir / "detic-reference/configs" / name, overrides)
    model = build_model(cfg, training_model_data(cfg))  # the class frequencies, read as `detic train` does
    model.set_vocabulary(torch.randn(3, 512, generator=torch.Generator().manual_seed(1)))
    return model.train()


def _batch(with_masks: bool, ann_type: str = "box") -> list[dict]:
    g = torch.Generator().manual_seed(0)
    out = []
    for boxes, classes in [([[16.0, 20, 70, 90]], [0]), ([[40.0, 10, 120, 60], [8, 70, 50, 120]], [1, 2])]:
        image = torch.randint(0, 60, (3, 128, 128), generator=g, dtype=torch.uint8)
        inst = Instances((128, 128), gt_boxes=Boxes(torch.tensor(boxes)), gt_classes=torch.tensor(classes))
        masks = torch.zeros(len(boxes), 128, 128, dtype=torch.bool)
        for i, ((x1, y1, x2, y2), c) in enumerate(zip(torch.tensor(boxes).int().tolist(), classes)):
            image[:, y1:y2, x1:x2] = torch.tensor([200, 120, 40])[[c, (c + 1) % 3, (c + 2) % 3]].view(3, 1, 1)
            masks[i, y1:y2, x1 + 4:x2 - 4] = True
        if with_masks:
            inst.gt_masks = masks
        out.append({"image": image, "height": 128, "width": 128, "instances": inst, "ann_type": ann_type,
                    "pos_category_ids": sorted(set(classes)), "dataset_source": 0})
    return out


def _overfit(model, batch, steps: int, lr: float) -> list[dict[str, float]]:
    torch.manual_seed(0)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    history = []
    for _ in range(steps):
        losses = model(batch)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        history.append({k: v.item() for k, v in losses.items()})
    return history


def _mean_total(history: list[dict[str, float]]) -> float:
    return sum(sum(h.values()) for h in history) / len(history)


def test_c4_config_trains_rpn_and_res5_heads(shared_dir, tmp_path, monkeypatch):
    model = _model(shared_dir, C4, tmp_path, monkeypatch)
    history = _overfit(model, _batch(with_masks=False), steps=25, lr=0.005)
    assert set(history[0]) == {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg"}
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
    assert _mean_total(history[-5:]) < 0.6 * _mean_total(history[:3])
    model.eval()
    assert "instances" in model(_batch(with_masks=False))[0]  # eval mode still runs inference


def test_centernet2_config_trains_every_part(shared_dir, tmp_path, monkeypatch):
    model = _model(shared_dir, C2_R18, tmp_path, monkeypatch)
    history = _overfit(model, _batch(with_masks=True), steps=15, lr=0.002)
    assert set(history[0]) == CENTERNET_LOSSES | CASCADE_LOSSES | {"loss_mask"}
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
    assert _mean_total(history[-3:]) < 0.4 * _mean_total(history[:2])
    assert history[-1]["loss_mask"] < history[0]["loss_mask"]


def test_image_label_batches_are_wired_to_the_weak_losses(shared_dir, tmp_path, monkeypatch):
    """Wiring only, on purpose: what forward_train hands the ROI heads' image-label entry point for an
    image-label batch and what it does with the terms that come back (dataset weight, proposal losses
    zeroed, gradient to the backbone). The weak losses' maths: tests/modeling/roi_heads/test_image_label_losses.py
    and tests/modeling/test_weak_supervision_train.py::test_image_batch_trains_only_the_max_size_proposal."""
    model = _model(shared_dir, C2_R18, tmp_path, monkeypatch, ["MODEL.MASK_ON=False"])
    model.dataset_loss_weight = [0.25]
    batch = _batch(with_masks=False, ann_type="image")
    for x in batch:
        x["instances"] = x["instances"][:0]
    seen = {}

    def forward_image_labels(features, proposals, image_labels, *, ann_type, batch):
        seen.update(features=features, labels=image_labels, ann_type=ann_type, proposals=proposals,
                    classifier=batch.classifier)
        return {"loss_image": sum(f.square().mean() for f in features.values())}

    model.roi_heads.forward_image_labels = forward_image_labels
    losses = model(batch)
    with torch.no_grad():  # the backbone's features of the same padded batch, computed here independently
        features = model.backbone(model.preprocess_image(batch).tensor)
    assert sorted(seen["features"]) == sorted(features) == ["p3", "p4", "p5", "p6", "p7"]
    for name, value in features.items():
        torch.testing.assert_close(seen["features"][name], value)
    assert (seen["labels"], seen["ann_type"], seen["classifier"]) == ([[0], [1, 2]], "image", None)
    assert len(seen["proposals"]) == 2 and all(len(p) > 0 and p.has("proposal_boxes") for p in seen["proposals"])
    expected = 0.25 * sum(f.square().mean() for f in features.values())  # times DATASET_LOSS_WEIGHT
    torch.testing.assert_close(losses["loss_image"].detach(), expected)
    assert set(losses) == CENTERNET_LOSSES | {"loss_image"}
    assert all(losses[k].item() == 0 for k in CENTERNET_LOSSES)  # no proposal loss from image labels
    sum(losses.values()).backward()
    assert any(p.grad is not None and p.grad.any() for p in model.backbone.parameters())
    head = model.proposal_generator.centernet_head
    assert all(p.grad is None or not p.grad.any() for p in head.parameters())


def test_training_input_errors(shared_dir, tmp_path, monkeypatch):
    model = _model(shared_dir, C2_R18, tmp_path, monkeypatch, ["MODEL.MASK_ON=False"])
    batch = _batch(with_masks=False)
    batch[1]["ann_type"] = "image"
    with pytest.raises(DeticError, match="mixes annotation types"):
        model(batch)
    batch = _batch(with_masks=False)
    del batch[0]["instances"]
    with pytest.raises(DeticError, match=r"elements \[0\] have no 'instances'"):
        model(batch)
    model.class_names = []
    with pytest.raises(DeticError, match="set_vocabulary"):
        model(_batch(with_masks=False))


def test_dataset_loss_weight_scales_every_loss(shared_dir, tmp_path, monkeypatch):
    model = _model(shared_dir, C2_R18, tmp_path, monkeypatch, ["MODEL.MASK_ON=False"])
    torch.manual_seed(0)
    plain = model(_batch(with_masks=False))
    model.dataset_loss_weight = [0.5]
    torch.manual_seed(0)
    weighted = model(_batch(with_masks=False))
    assert set(plain) == set(weighted) == CENTERNET_LOSSES | CASCADE_LOSSES
    for k in plain:
        torch.testing.assert_close(weighted[k], plain[k] * 0.5)
