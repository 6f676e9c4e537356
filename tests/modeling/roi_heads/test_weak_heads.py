"""The weak paths of the cascade and Res5 ROI heads with given proposals: which proposals each stage sees,
loss keys per annotation type, the caption term by hand (with a cross-process offset), and the errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from detic_cli.errors import DeticError
from detic_cli.layers.box_transform import Box2BoxTransform
from detic_cli.layers.roi_pooler import ROIPooler
from detic_cli.modeling.roi_heads.box_head import FastRCNNConvFCHead
from detic_cli.modeling.roi_heads.caption_loss import caption_logits_loss
from detic_cli.modeling.roi_heads.cascade import DeticCascadeROIHeads
from detic_cli.modeling.roi_heads.fast_rcnn import DeticBoxPredictor
from detic_cli.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead
from detic_cli.modeling.roi_heads.res5 import CustomRes5ROIHeads
from detic_cli.modeling.roi_heads.weak_supervision import BatchClassifier, WeakSupervision
from detic_cli.structures import Boxes, Instances

SIZE = (64, 64)
WEIGHTS = [(10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0)]
LABELS = [[1], [0, 2]]


pytestmark = pytest.mark.usefixtures("one_thread")


def _weak(**kw) -> WeakSupervision:
    settings = dict(ws_num_props=5, add_image_box=True, with_image_labels=True, with_caption=True,
                    image_loss_weight=0.1, caption_weight=2.0)
    return WeakSupervision(**{**settings, **kw})


def _predictor(input_size: int, weights) -> DeticBoxPredictor:
    return DeticBoxPredictor(input_size=input_size, num_classes=3, box2box_transform=Box2BoxTransform(weights),
                             zs_weight_dim=16)


def _cascade(weak: WeakSupervision) -> DeticCascadeROIHeads:
    torch.manual_seed(0)
    model = DeticCascadeROIHeads(
        in_features=["p3"], box_pooler=ROIPooler(output_size=4, scales=[1 / 8]),
        box_heads=[FastRCNNConvFCHead(in_channels=8, resolution=4, num_fc=2, fc_dim=32) for _ in WEIGHTS],
        box_predictors=[_predictor(32, w) for w in WEIGHTS], mask_in_features=["p3"],
        mask_pooler=ROIPooler(output_size=4, scales=[1 / 8]),
        mask_head=MaskRCNNConvUpsampleHead(in_channels=8, num_conv=1, conv_dim=8), weak=weak)
    model.set_vocabulary(torch.randn(3, 16))
    return model


def _proposals() -> list[Instances]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(2):
        xy = torch.rand(8, 2, generator=g) * 50 - 4  # some boxes stick out of the 64 x 64 image
        boxes = torch.cat([xy, xy + 6 + torch.rand(8, 2, generator=g) * 20], 1)
        out.append(Instances(SIZE, proposal_boxes=Boxes(boxes), objectness_logits=torch.linspace(1, 0.1, 8)))
    return out


def _features() -> dict[str, torch.Tensor]:
    return {"p3": torch.randn(2, 8, 8, 8, generator=torch.Generator().manual_seed(3), requires_grad=True)}


def test_cascade_stages_run_on_the_selected_then_regressed_boxes(monkeypatch):
    heads = _cascade(_weak())
    nn.init.normal_(heads.box_predictor[0].bbox_pred[-1].weight, std=0.3)
    seen = []
    original = heads.stage_features

    def recording(feats, proposals, stage, grad_scale=None):
        assert grad_scale == pytest.approx(1 / 3)
        x = original(feats, proposals, stage, grad_scale)
        seen.append((proposals, x))
        return x

    monkeypatch.setattr(heads, "stage_features", recording)
    props = _proposals()
    losses = heads.forward_image_labels(_features(), props, LABELS, ann_type="image",
                                        batch=BatchClassifier(caption_features=torch.randn(2, 16)))
    assert set(losses) == {f"loss_{n}_stage{k}" for n in ("cls", "box_reg", "image", "caption")
                           for k in range(3)} | {"loss_mask"}
    stage0 = seen[0][0]
    for p, given in zip(stage0, props):
        expected = given.proposal_boxes.tensor[:5].clamp(0, 64)
        assert torch.equal(p.proposal_boxes.tensor[:5], expected)
        assert p.proposal_boxes.tensor[5].tolist() == [0, 0, 64, 64]  # the whole-image box comes last
    for stage in range(2):
        (prev, x), nxt = seen[stage], seen[stage + 1][0]
        _, deltas = heads.box_predictor[stage](x)
        for boxes, p in zip(heads.box_predictor[stage].predict_boxes(deltas, prev), nxt):
            clipped = Boxes(boxes.detach().clone())
            clipped.clip(SIZE)
            assert torch.equal(p.proposal_boxes.tensor, clipped.tensor[clipped.nonempty()])
    for k in range(3):
        assert losses[f"loss_image_stage{k}"] > 0 and losses[f"loss_caption_stage{k}"] == 0  # "image": no captions
        assert losses[f"loss_cls_stage{k}"] == 0 and losses[f"loss_box_reg_stage{k}"] == 0
        assert not losses[f"loss_box_reg_stage{k}"].requires_grad  # the box regressors get no gradient
    # as in the original, the mask head takes no part in a weak batch's loss (its parameters get no gradient,
    # so the optimizer leaves them alone: no weight decay); DDP runs with FIND_UNUSED_PARAM True there
    assert losses["loss_mask"] == 0 and not losses["loss_mask"].requires_grad


def test_caption_term_by_hand_with_an_offset():
    heads = _cascade(_weak())
    captions = torch.randn(5, 16, generator=torch.Generator().manual_seed(4))  # 5 captions of all processes
    batch = BatchClassifier(caption_features=captions, caption_offset=2)  # this process's images are rows 2, 3
    seen = []
    original = heads.stage_features
    heads.stage_features = lambda *a, **k: seen.append((a[1], original(*a, **k))) or seen[-1][1]
    losses = heads.forward_image_labels(_features(), _proposals(), LABELS, ann_type="caption", batch=batch)
    for k, (props, x) in enumerate(seen):
        last = torch.tensor([len(p) for p in props]).cumsum(0) - 1
        logits = heads.box_predictor[k].cls_score(x[last], classifier=captions)
        expected = 0.1 * 2.0 * caption_logits_loss(logits, target_offset=2, neg_weight=1.0)
        torch.testing.assert_close(losses[f"loss_caption_stage{k}"], expected)
        assert losses[f"loss_image_stage{k}"] == 0  # "caption" batches train no image labels
    synced = _cascade(_weak(sync_caption_batch=True, neg_cap_weight=0.125))
    tagged = synced.forward_image_labels(_features(), _proposals(), LABELS, ann_type="captiontag", batch=batch)
    assert tagged["loss_image_stage0"] > 0
    assert tagged["loss_caption_stage0"] < losses["loss_caption_stage0"]  # negatives weighted 1/8 with sync


def test_res5_weak_path_and_errors():
    torch.manual_seed(0)
    res5 = CustomRes5ROIHeads(in_features=["p3"], pooler=ROIPooler(output_size=4, scales=[1 / 8]),
                              res5=nn.Sequential(nn.Conv2d(8, 32, 1), nn.ReLU()),
                              box_predictor=_predictor(32, WEIGHTS[0]), weak=_weak(with_caption=False))
    res5.set_vocabulary(torch.randn(3, 16))
    losses = res5.forward_image_labels(_features(), _proposals(), LABELS, ann_type="image")
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_image"} and losses["loss_image"] > 0
    with pytest.raises(DeticError, match="MODEL.WITH_CAPTION"):
        res5.forward_image_labels(_features(), _proposals(), LABELS, ann_type="captiontag")
    no_box = CustomRes5ROIHeads(in_features=["p3"], pooler=res5.pooler, res5=res5.res5,
                                box_predictor=res5.box_predictor, weak=_weak(add_image_box=False))
    with pytest.raises(DeticError, match="ADD_IMAGE_BOX=True"):
        no_box.forward_image_labels(_features(), _proposals(), LABELS, ann_type="caption",
                                    batch=BatchClassifier(caption_features=torch.randn(2, 16)))
    wsod = CustomRes5ROIHeads(in_features=["p3"], pooler=res5.pooler, res5=res5.res5,
                              box_predictor=res5.box_predictor, weak=_weak(image_label_loss="wsod"))
    with pytest.raises(DeticError, match="WITH_SOFTMAX_PROP"):
        wsod.forward_image_labels(_features(), _proposals(), LABELS, ann_type="image")
    zeros = _weak().box_batch_zeros(torch.ones(()), suffix="_stage1")
    assert set(zeros) == {"loss_image_stage1", "loss_caption_stage1"} and all(v == 0 for v in zeros.values())
    assert _weak(with_image_labels=False, with_caption=False).box_batch_zeros(torch.ones(())) == {}
