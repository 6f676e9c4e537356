"""Training paths of the cascade and Res5 ROI heads with given proposals: loss names, the stage-to-stage
proposals, the 1/stages gradient scale, the mask loss, and a quick overfit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from detic_cli.layers.box_transform import Box2BoxTransform
from detic_cli.layers.roi_pooler import ROIPooler
from detic_cli.modeling.roi_heads.box_head import FastRCNNConvFCHead
from detic_cli.modeling.roi_heads.box_losses import FastRCNNLosses
from detic_cli.modeling.roi_heads.cascade import DeticCascadeROIHeads
from detic_cli.modeling.roi_heads.fast_rcnn import DeticBoxPredictor
from detic_cli.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead
from detic_cli.modeling.roi_heads.res5 import CustomRes5ROIHeads
from detic_cli.modeling.roi_heads.sampling import ProposalSampler
from detic_cli.structures import Boxes, Instances

SIZE = (64, 64)
WEIGHTS = [(10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0)]


pytestmark = pytest.mark.usefixtures("one_thread")


def _predictor(input_size: int, weights=WEIGHTS[0]) -> DeticBoxPredictor:
    return DeticBoxPredictor(input_size=input_size, num_classes=3, box2box_transform=Box2BoxTransform(weights),
                             zs_weight_dim=16)


def _cascade(mask: bool = True) -> DeticCascadeROIHeads:
    heads = [FastRCNNConvFCHead(in_channels=8, resolution=4, num_fc=2, fc_dim=32) for _ in WEIGHTS]
    extra = {}
    if mask:
        extra = dict(mask_in_features=["p3"], mask_pooler=ROIPooler(output_size=4, scales=[1 / 8]),
                     mask_head=MaskRCNNConvUpsampleHead(in_channels=8, num_conv=1, conv_dim=8))
    model = DeticCascadeROIHeads(in_features=["p3"], box_pooler=ROIPooler(output_size=4, scales=[1 / 8]),
                                 box_heads=heads, box_predictors=[_predictor(32, w) for w in WEIGHTS],
                                 sampler=ProposalSampler(iou_thresholds=[0.6], batch_size_per_image=32),
                                 stage_ious=[0.6, 0.7, 0.8], losses=FastRCNNLosses(), mask_weight=0.5, **extra)
    model.set_vocabulary(torch.randn(3, 16))
    return model


def _gt(with_masks: bool = True) -> list[Instances]:
    out = []
    for boxes, classes in [([[8.0, 8, 40, 40]], [1]), ([[30.0, 4, 60, 30], [4, 36, 28, 60]], [0, 2])]:
        b = torch.tensor(boxes)
        inst = Instances(SIZE, gt_boxes=Boxes(b), gt_classes=torch.tensor(classes))
        if with_masks:
            masks = torch.zeros(len(b), *SIZE, dtype=torch.bool)
            for i, (x1, y1, x2, y2) in enumerate(b.int().tolist()):
                masks[i, y1:y2, x1:x2] = True
            inst.gt_masks = masks
        out.append(inst)
    return out


def _proposals(gt: list[Instances], seed: int = 0) -> list[Instances]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for inst in gt:
        jitter = inst.gt_boxes.tensor.repeat(6, 1) + torch.randn(6 * len(inst), 4, generator=g) * 3
        xy = torch.rand(10, 2, generator=g) * 40
        boxes = torch.cat([jitter, torch.cat([xy, xy + 8 + torch.rand(10, 2, generator=g) * 16], 1)])
        out.append(Instances(SIZE, proposal_boxes=Boxes(boxes), objectness_logits=torch.rand(len(boxes), generator=g)))
    return out


def _features(seed: int = 0) -> dict[str, torch.Tensor]:
    return {"p3": torch.randn(2, 8, 8, 8, generator=torch.Generator().manual_seed(seed), requires_grad=True)}


def test_cascade_loss_names_and_finite_values():
    torch.manual_seed(0)
    gt = _gt()
    losses = _cascade().forward_with_losses(_features(), _proposals(gt), gt)
    assert set(losses) == {f"loss_{n}_stage{k}" for n in ("cls", "box_reg") for k in range(3)} | {"loss_mask"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    no_masks = _cascade().forward_with_losses(_features(), _proposals(gt), _gt(with_masks=False))
    assert no_masks["loss_mask"].item() == 0 and not no_masks["loss_mask"].requires_grad


def test_later_stages_train_on_the_previous_stage_boxes(monkeypatch):
    torch.manual_seed(0)
    heads, gt = _cascade(mask=False), _gt()
    nn.init.normal_(heads.box_predictor[0].bbox_pred[-1].weight, std=0.5)  # large moves: some boxes get clipped
    seen: list[tuple[list[Instances], list[torch.Tensor]]] = []
    original = heads.run_stage

    def recording(feats, proposals, stage, classifier=None, grad_scale=None):
        logits, deltas = original(feats, proposals, stage, classifier, grad_scale)
        seen.append((proposals, heads.box_predictor[stage].predict_boxes(deltas, proposals)))
        assert grad_scale == pytest.approx(1 / 3)
        return logits, deltas

    monkeypatch.setattr(heads, "run_stage", recording)
    heads.forward_with_losses(_features(), _proposals(gt), gt)
    stage0 = seen[0][0]
    assert [int((p.gt_classes < 3).sum()) for p in stage0] == [7, 8]  # 0.25 * 32 foreground at most
    assert [len(p) for p in stage0] == [17, 19]  # 16 + 1 gt all kept; 8 fg + every background of 22 + 2 gt
    for (prev_props, prev_boxes), (props, _) in zip(seen[:-1], seen[1:]):
        for image, (boxes, next_props) in enumerate(zip(prev_boxes, props)):
            clipped = Boxes(boxes.detach().clone())
            clipped.clip(SIZE)
            keep = clipped.nonempty()
            assert torch.equal(next_props.proposal_boxes.tensor, clipped.tensor[keep])
            assert not next_props.proposal_boxes.tensor.requires_grad
            assert torch.equal(next_props.objectness_logits, prev_props[image].objectness_logits[keep])
            assert next_props.has("gt_classes")


def test_box_features_gradient_is_scaled_by_one_over_stages():
    heads = _cascade(mask=False)
    props = _proposals(_gt())
    grads = []
    for scale in (None, 1 / 3):
        feats = _features()
        logits, deltas = heads.run_stage([feats["p3"]], props, 1, grad_scale=scale)
        (logits.sum() + deltas.sum()).backward()
        grads.append(feats["p3"].grad)
    torch.testing.assert_close(grads[1], grads[0] / 3)


def test_mask_loss_uses_stage0_foreground_and_mask_weight(monkeypatch):
    torch.manual_seed(0)
    heads, gt = _cascade(), _gt()
    got = {}

    def fake_loss(logits, proposals, masks):
        got["n"] = [len(p) for p in proposals]
        got["classes"] = torch.cat([p.gt_classes for p in proposals])
        return logits.sum() * 0 + 2.0

    monkeypatch.setattr("detic_cli.modeling.roi_heads.cascade.mask_rcnn_loss", fake_loss)
    losses = heads.forward_with_losses(_features(), _proposals(gt), gt)
    assert losses["loss_mask"].item() == pytest.approx(1.0)  # 2.0 * mask_weight 0.5
    assert sum(got["n"]) > 0 and (got["classes"] < 3).all()


def test_cascade_heads_overfit_given_proposals():
    torch.manual_seed(0)
    heads, gt = _cascade(), _gt()
    feats, props = _features(), _proposals(gt)
    opt = torch.optim.SGD(heads.parameters(), lr=0.02, momentum=0.9)
    totals = []
    for _ in range(30):
        total = sum(heads.forward_with_losses(feats, props, gt).values())
        opt.zero_grad()
        total.backward()
        opt.step()
        totals.append(total.item())
    assert sum(totals[-3:]) / 3 < 0.5 * sum(totals[:3]) / 3


def test_res5_heads_losses():
    torch.manual_seed(0)
    res5 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
    heads = CustomRes5ROIHeads(in_features=["p3"], pooler=ROIPooler(output_size=4, scales=[1 / 8]), res5=res5,
                               box_predictor=_predictor(16), sampler=ProposalSampler(batch_size_per_image=16),
                               losses=FastRCNNLosses())
    heads.set_vocabulary(torch.randn(3, 16))
    gt = _gt(with_masks=False)
    feats, props = _features(), _proposals(gt)
    losses = heads.forward_with_losses(feats, props, gt)
    assert set(losses) == {"loss_cls", "loss_box_reg"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert feats["p3"].grad.abs().sum() > 0 and res5[0].weight.grad.abs().sum() > 0
    with pytest.raises(RuntimeError, match="without training settings"):
        CustomRes5ROIHeads(in_features=["p3"], pooler=heads.pooler, res5=res5,
                           box_predictor=heads.box_predictor).forward_with_losses(feats, props, gt)
