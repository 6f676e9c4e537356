"""Weak supervision end to end in the model: image-label batches on the R18 CenterNet2 Detic config (which
proposal carries the gradient, zero box losses, stable loss keys, the dynamic classifier, dataset loss
weights, overfitting) and caption batches on the C4 caption config."""

from __future__ import annotations

import pytest
import torch

from detic_cli.config import load_config
from detic_cli.engine.build import training_model_data
from detic_cli.errors import DeticError
from detic_cli.modeling.builders import build_model
from detic_cli.modeling.roi_heads.caption_loss import caption_logits_loss
from detic_cli.modeling.roi_heads.weak_supervision import BatchClassifier
from detic_cli.structures import Boxes, Instances

R18 = "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml"
C4_CAPTION = "Detic_OVCOCO_CLIP_R50_1x_max-size_caption.yaml"
NUM_CLASSES = 12
SMALL = {
    R18: ["MODEL.FPN.OUT_CHANNELS=64", "MODEL.ROI_BOX_HEAD.FC_DIM=256", "MODEL.ROI_MASK_HEAD.CONV_DIM=64",
          "MODEL.ROI_MASK_HEAD.NUM_CONV=1", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE=32",
          "MODEL.CENTERNET.PRE_NMS_TOPK_TRAIN=256", "MODEL.CENTERNET.POST_NMS_TOPK_TRAIN=64",
          f"MODEL.ROI_HEADS.NUM_CLASSES={NUM_CLASSES}", "MODEL.NUM_SAMPLE_CATS=5"],
    C4_CAPTION: ["MODEL.RESNETS.RES2_OUT_CHANNELS=32", "MODEL.RESNETS.WIDTH_PER_GROUP=8",
                 "MODEL.RESNETS.STEM_OUT_CHANNELS=16", "MODEL.BACKBONE.FREEZE_AT=0",
                 "MODEL.PIXEL_STD=[57.0,57.0,57.0]", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE=32",
                 "MODEL.RPN.PRE_NMS_TOPK_TRAIN=200", "MODEL.RPN.POST_NMS_TOPK_TRAIN=50",
                 f"MODEL.ROI_HEADS.NUM_CLASSES={NUM_CLASSES}", "MODEL.ROI_BOX_HEAD.IGNORE_ZERO_CATS=False"],
}
CENTERNET = {"loss_centernet_loc", "loss_centernet_agn_pos", "loss_centernet_agn_neg"}
STAGES = range(3)
R18_KEYS = CENTERNET | {"loss_mask"} | {f"loss_{n}_stage{k}" for n in ("cls", "box_reg", "image") for k in STAGES}
C4_KEYS = {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_image", "loss_caption"}


pytestmark = pytest.mark.usefixtures("one_thread")


def _embeddings() -> torch.Tensor:
    return torch.randn(NUM_CLASSES, 512, generator=torch.Generator().manual_seed(1))


def _model(shared_dir, name: str, tmp_path, monkeypatch, extra=()):
    monkeypatch.setenv("DETIC_DATASETS", str(tmp_path))
    (tmp_path / "metadata").mkdir(exist_ok=True)  # the dynamic classifier's class frequencies (10 of 12 classes)
    (tmp_path / "metadata/lvis_v1_train_cat_info.json").write_text(
        "[" + ", ".join(f'{{"id": {i + 1}, "image_count": {i % 4}}}' for i in range(10)) + "]")
    torch.manual_seed(0)
    cfg = load_config(shared_dir / "detic-reference/configs" / name, [*SMALL[name], *extra])
    model = build_model(cfg, training_model_data(cfg))  # class frequencies and tokenizer, as `detic train`
    model.set_vocabulary(_embeddings())
    return model.train()


def _batch(ann_type: str, *, source: int = 0) -> list[dict]:
    """Two 128 x 128 images with one or two coloured rectangles; weak types drop the boxes."""
    g = torch.Generator().manual_seed(0)
    out = []
    for boxes, classes, caption in [([[16.0, 20, 70, 90]], [0], "a red box on the left"),
                                    ([[40.0, 10, 120, 60], [8, 70, 50, 120]], [1, 2], "two boxes, green and blue")]:
        image = torch.randint(0, 60, (3, 128, 128), generator=g, dtype=torch.uint8)
        for (x1, y1, x2, y2), c in zip(torch.tensor(boxes).int().tolist(), classes):
            image[:, y1:y2, x1:x2] = torch.tensor([200, 120, 40])[[c, (c + 1) % 3, (c + 2) % 3]].view(3, 1, 1)
        inst = Instances((128, 128), gt_boxes=Boxes(torch.tensor(boxes)), gt_classes=torch.tensor(classes))
        element = {"image": image, "height": 128, "width": 128, "instances": inst if ann_type == "box" else inst[:0],
                   "ann_type": ann_type, "pos_category_ids": sorted(set(classes)), "dataset_source": source}
        if "caption" in ann_type:
            element["captions"] = [caption]
        out.append(element)
    return out


def _record_pooler(heads) -> list[tuple[list[torch.Tensor], torch.Tensor]]:
    """Every box-pooler call's (boxes per image, pooled output with its gradient kept)."""
    calls = []
    original = heads.box_pooler.forward

    def recording(features, boxes, **kwargs):
        pooled = original(features, boxes, **kwargs)
        pooled.retain_grad()
        calls.append(([b.tensor.clone() for b in boxes], pooled))
        return pooled

    heads.box_pooler.forward = recording
    return calls


def test_image_batch_trains_only_the_max_size_proposal(shared_dir, tmp_path, monkeypatch):
    model = _model(shared_dir, R18, tmp_path, monkeypatch, ["MODEL.DYNAMIC_CLASSIFIER=False",
                                                            "MODEL.ROI_BOX_HEAD.WS_NUM_PROPS=16",
                                                            "MODEL.ROI_BOX_HEAD.ADD_IMAGE_BOX=True"])
    calls = _record_pooler(model.roi_heads)
    losses = model(_batch("image"))
    assert set(losses) == R18_KEYS
    for k in STAGES:
        assert losses[f"loss_image_stage{k}"].item() > 0
        assert losses[f"loss_cls_stage{k}"].item() == 0 and losses[f"loss_box_reg_stage{k}"].item() == 0
    assert all(losses[name].item() == 0 for name in CENTERNET | {"loss_mask"})
    assert len(calls) == 3  # one pooling per stage, no mask pooling
    boxes, pooled = calls[0]
    assert [len(b) for b in boxes] == [17, 17]  # the 16 best proposals (WS_NUM_PROPS), then the image box
    assert all(b[-1].tolist() == [0, 0, 128, 128] and (b[:-1] >= 0).all() and (b[:-1] <= 128).all() for b in boxes)
    losses["loss_image_stage0"].backward(retain_graph=True)
    rows = pooled.grad.flatten(1).abs().sum(dim=1).split([len(b) for b in boxes])
    for image_boxes, grad in zip(boxes, rows):
        area = (image_boxes[:, 2] - image_boxes[:, 0]) * (image_boxes[:, 3] - image_boxes[:, 1])
        biggest = int(area[:-1].argmax())  # max_size: the largest proposal (the last one is never picked)
        assert grad[biggest] > 0 and grad.nonzero().flatten().tolist() == [biggest]
    model.zero_grad()
    sum(losses.values()).backward()
    head = model.proposal_generator.centernet_head
    assert all(p.grad is None or not p.grad.any() for p in head.parameters())  # proposal losses are 0
    assert any(p.grad is not None and p.grad.any() for p in model.backbone.parameters())


def test_box_batches_report_zero_image_losses_with_the_same_keys(shared_dir, tmp_path, monkeypatch):
    model = _model(shared_dir, R18, tmp_path, monkeypatch, ["MODEL.DYNAMIC_CLASSIFIER=False"])
    losses = model(_batch("box"))
    assert set(losses) == R18_KEYS
    assert all(losses[f"loss_image_stage{k}"].item() == 0 for k in STAGES)
    assert all(losses[f"loss_cls_stage{k}"].item() > 0 for k in STAGES)
    no_labels = _model(shared_dir, R18, tmp_path, monkeypatch, ["MODEL.DYNAMIC_CLASSIFIER=False",
                                                                "WITH_IMAGE_LABELS=False"])
    assert set(no_labels(_batch("box"))) == R18_KEYS - {f"loss_image_stage{k}" for k in STAGES}


def _record_samples(model) -> list[tuple[torch.Tensor, torch.Tensor]]:
    samples = []
    original = model.dynamic_classes.sample

    def recording(classes, *, box_data, zs_weight):
        out = original(classes, box_data=box_data, zs_weight=zs_weight)
        samples.append((classes.clone(), box_data, *out))
        return out

    model.dynamic_classes.sample = recording
    return samples


def test_dynamic_classifier_samples_k_classes_and_matches_the_subset_vocabulary(shared_dir, tmp_path, monkeypatch):
    model = _model(shared_dir, R18, tmp_path, monkeypatch, ["MODEL.MASK_ON=False"])
    samples = _record_samples(model)
    torch.manual_seed(0)
    losses = model(_batch("box"))
    classes, box_data, classifier, cls_id_map = samples[0]
    assert box_data and classes.tolist() == [0, 1, 2] and classifier.shape == (6, 512)  # K = 5 + background
    inds = (cls_id_map[:NUM_CLASSES] < 5).nonzero().flatten()
    assert set(inds.tolist()) >= {0, 1, 2} and len(inds) == 5 and not (set(inds.tolist()) & {10, 11})  # freq 0
    assert all(torch.isfinite(v) for v in losses.values())

    # The same heads with the sampled classes as the whole vocabulary and renumbered gt give the same losses.
    order = cls_id_map[inds].argsort()
    subset = inds[order]
    heads = model.roi_heads
    feats = {k: torch.randn(1, 64, 128 // s, 128 // s, generator=torch.Generator().manual_seed(s))
             for k, s in (("p3", 8), ("p4", 16), ("p5", 32))}
    gt = [Instances((128, 128), gt_boxes=Boxes(torch.tensor([[10.0, 10, 90, 100], [60, 20, 120, 70]])),
                    gt_classes=torch.tensor([1, 2]))]
    props = [Instances((128, 128), proposal_boxes=Boxes(gt[0].gt_boxes.tensor.repeat(4, 1) + torch.randn(8, 4) * 4),
                       objectness_logits=torch.rand(8))]
    torch.manual_seed(1)
    dynamic = heads.forward_with_losses(feats, props, gt, batch=BatchClassifier(classifier, cls_id_map))
    heads.set_vocabulary(_embeddings()[subset])
    remapped = [Instances((128, 128), gt_boxes=gt[0].gt_boxes, gt_classes=cls_id_map[gt[0].gt_classes])]
    torch.manual_seed(1)
    direct = heads.forward_with_losses(feats, props, remapped)
    assert set(dynamic) == set(direct)
    for name in dynamic:
        torch.testing.assert_close(dynamic[name], direct[name], rtol=1e-5, atol=1e-6)


def test_dynamic_classifier_on_image_batches(shared_dir, tmp_path, monkeypatch):
    model = _model(shared_dir, R18, tmp_path, monkeypatch, ["MODEL.MASK_ON=False"])
    samples = _record_samples(model)
    logits_widths = []
    predictor = model.roi_heads.box_predictor[0]
    original = predictor.forward
    predictor.forward = lambda x, classifier=None: logits_widths.append(classifier.shape[0]) or original(x, classifier)
    torch.manual_seed(0)
    losses = model(_batch("image"))
    classes, box_data, classifier, cls_id_map = samples[0]
    assert not box_data and classes.tolist() == [0, 1, 2] and classifier.shape == (6, 512)
    assert set(cls_id_map[10:NUM_CLASSES].tolist()) <= set(range(6))  # uniform draws may pick freq-0 classes
    assert logits_widths == [6]
    assert all(losses[f"loss_image_stage{k}"].item() > 0 for k in STAGES)


def test_dynamic_classifier_refuses_the_federated_loss(shared_dir, tmp_path, monkeypatch):
    with pytest.raises(DeticError, match="USE_FED_LOSS=False"):
        _model(shared_dir, R18, tmp_path, monkeypatch, ["MODEL.ROI_BOX_HEAD.USE_FED_LOSS=True"])


def test_image_loss_goes_down_on_a_fixed_batch(shared_dir, tmp_path, monkeypatch):
    model = _model(shared_dir, R18, tmp_path, monkeypatch, ["MODEL.DYNAMIC_CLASSIFIER=False", "MODEL.MASK_ON=False"])
    batch = _batch("image")
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.02, momentum=0.9)
    history = []
    for _ in range(16):
        losses = model(batch)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(sum(losses[f"loss_image_stage{k}"].item() for k in STAGES))
    # The first step mostly lowers the negative columns; the selected proposals keep learning their labels after.
    assert history[1] < 0.5 * history[0]
    assert sum(history[-3:]) < 0.6 * sum(history[1:4])


def test_dataset_loss_weight_scales_weak_losses(shared_dir, tmp_path, monkeypatch):
    extra = ["MODEL.DYNAMIC_CLASSIFIER=False", "MODEL.MASK_ON=False"]
    plain = _model(shared_dir, R18, tmp_path, monkeypatch, extra)(_batch("image", source=1))
    model = _model(shared_dir, R18, tmp_path, monkeypatch, [*extra, "MODEL.DATASET_LOSS_WEIGHT=[1.0,0.25]"])
    assert model.dataset_loss_weight == [1.0, 0.25]
    weighted = model(_batch("image", source=1))
    assert set(weighted) == set(plain)
    for name in plain:
        torch.testing.assert_close(weighted[name], plain[name] * 0.25)


def test_c4_caption_config(shared_dir, tmp_path, monkeypatch):
    model = _model(shared_dir, C4_CAPTION, tmp_path, monkeypatch)
    assert all(not p.requires_grad for p in model.text_encoder.parameters())  # the CLIP text tower is frozen
    by_type = {t: model(_batch(t)) for t in ("box", "image", "caption", "captiontag")}
    assert all(set(losses) == C4_KEYS for losses in by_type.values())
    assert by_type["box"]["loss_image"].item() == 0 == by_type["box"]["loss_caption"].item()
    assert by_type["image"]["loss_image"].item() > 0 and by_type["image"]["loss_caption"].item() == 0
    assert by_type["caption"]["loss_image"].item() == 0 and by_type["caption"]["loss_caption"].item() > 0
    tag = by_type["captiontag"]
    assert tag["loss_image"].item() > 0 and tag["loss_caption"].item() > 0
    for losses in list(by_type.values())[1:]:
        assert all(losses[k].item() == 0 for k in ("loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg"))
    torch.testing.assert_close(tag["loss_image"], by_type["image"]["loss_image"])
    torch.testing.assert_close(tag["loss_caption"], by_type["caption"]["loss_caption"])

    # The caption term by hand: the whole-image box's res5 feature against both captions.
    batch = _batch("caption")
    with torch.no_grad():
        features = model.backbone(model.preprocess_image(batch).tensor)
        image_boxes = [Instances((128, 128), proposal_boxes=Boxes(torch.tensor([[0.0, 0, 128, 128]])))] * 2
        regions = model.roi_heads.box_features(features, image_boxes)
        captions = model.text_encoder([x["captions"][0] for x in batch]).float()
        logits = model.roi_heads.box_predictor.cls_score(regions, classifier=captions)
    expected = 0.1 * caption_logits_loss(logits, neg_weight=1.0)  # IMAGE_LOSS_WEIGHT 0.1, NEG_CAP_WEIGHT 1.0
    torch.testing.assert_close(by_type["caption"]["loss_caption"], expected, rtol=1e-4, atol=1e-5)

    no_captions = [{k: v for k, v in x.items() if k != "captions"} for x in batch]
    with pytest.raises(DeticError, match="has no captions"):
        model(no_captions)
    for x in batch:
        x["ann_type"] = "proptag"
    with pytest.raises(DeticError, match="'proptag' is not supported"):
        model(batch)
