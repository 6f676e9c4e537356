"""Heatmap focal loss and IoU/GIoU losses against hand-computed values and direct formulas."""

from __future__ import annotations

import math

import pytest
import torch

from detic_cli.layers.losses import binary_heatmap_focal_loss, giou_loss_xyxy, ltrb_iou_loss, mean_over_processes


def _focal_by_hand(logits, targets, pos, alpha, beta, gamma, clamp, ignore_high_fp):
    pos_sum, neg_sum = 0.0, 0.0
    for i, (x, t) in enumerate(zip(logits.tolist(), targets.tolist())):
        p = min(max(1 / (1 + math.exp(-x)), clamp), 1 - clamp)
        if ignore_high_fp <= 0 or p < ignore_high_fp:
            neg_sum -= math.log(1 - p) * p ** gamma * (1 - t) ** beta
        pos_sum -= pos.tolist().count(i) * math.log(p) * (1 - p) ** gamma
    if alpha >= 0:
        pos_sum, neg_sum = alpha * pos_sum, (1 - alpha) * neg_sum
    return pos_sum, neg_sum


@pytest.mark.parametrize("alpha,ignore_high_fp", [(0.25, -1.0), (0.25, 0.85), (-1.0, 0.5)])
def test_heatmap_focal_loss_matches_the_formula(alpha, ignore_high_fp):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(40, generator=gen) * 3
    logits[3] = 20.0  # clamped at 1 - 1e-4
    targets = torch.rand(40, generator=gen) ** 3
    targets[[5, 9]] = 1.0
    pos = torch.tensor([5, 9, 9])  # a location listed twice counts twice
    got = binary_heatmap_focal_loss(logits, targets, pos, alpha=alpha, beta=4.0, gamma=2.0, sigmoid_clamp=1e-4,
                                    ignore_high_fp=ignore_high_fp)
    want = _focal_by_hand(logits, targets, pos, alpha, 4.0, 2.0, 1e-4, ignore_high_fp)
    assert got[0].item() == pytest.approx(want[0], rel=1e-5)
    assert got[1].item() == pytest.approx(want[1], rel=1e-5)
    assert got[0] > 0 and got[1] > 0


def test_heatmap_focal_loss_single_values_by_hand():
    # p = sigmoid(0) = 0.5 at a positive with target 1: pos = -log(0.5) * 0.25, neg term = 0 (weight (1-1)^4)
    pos, neg = binary_heatmap_focal_loss(torch.zeros(2), torch.tensor([1.0, 0.5]), torch.tensor([0]),
                                         alpha=-1.0, beta=4.0, gamma=2.0)
    assert pos.item() == pytest.approx(math.log(2) * 0.25)
    assert neg.item() == pytest.approx(math.log(2) * 0.25 * 0.5 ** 4)
    pos, neg = binary_heatmap_focal_loss(torch.zeros(2), torch.zeros(2), torch.zeros(0, dtype=torch.int64))
    assert pos.item() == 0 and neg.item() == pytest.approx(2 * math.log(2) * 0.25)


def test_heatmap_focal_loss_gradient_flows_and_input_is_untouched():
    logits = torch.randn(10, requires_grad=True)
    before = logits.detach().clone()
    pos, neg = binary_heatmap_focal_loss(logits, torch.rand(10), torch.tensor([1, 2]), alpha=0.25)
    (pos + neg).backward()
    assert torch.equal(logits.detach(), before)
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("pred,target,loss", [
    ((1, 1, 1, 1), (2, 2, 2, 2), 1 - 5 / 17),          # nested: inter 4, union 16, enclose 16
    ((2, 1, 0, 1), (0, 1, 2, 1), 1 - 1 / 9),           # touching: inter 0, union 8, enclose 8
    ((1, 1, 0, 0), (0, 0, 1, 1), 1 - (1 / 3 - 2 / 4)),  # diagonal: inter 0, union 2, enclose 4
])
def test_ltrb_giou_by_hand(pred, target, loss):
    got = ltrb_iou_loss(torch.tensor([pred], dtype=torch.float32), torch.tensor([target], dtype=torch.float32))
    assert got.item() == pytest.approx(loss, rel=1e-6)


def test_ltrb_iou_types_weights_and_reductions():
    pred, target = torch.tensor([[1.0, 1, 1, 1], [2, 2, 2, 2]]), torch.tensor([[2.0, 2, 2, 2], [2, 2, 2, 2]])
    per = ltrb_iou_loss(pred, target, loss_type="linear_iou", reduction="none")
    assert per.tolist() == pytest.approx([1 - 5 / 17, 0.0], abs=1e-6)
    assert ltrb_iou_loss(pred, target, loss_type="iou", reduction="none")[0].item() == pytest.approx(-math.log(5 / 17))
    weighted = ltrb_iou_loss(pred, target, torch.tensor([0.5, 3.0]))
    assert weighted.item() == pytest.approx(0.5 * (1 - 5 / 17), rel=1e-6)
    with pytest.raises(ValueError):
        ltrb_iou_loss(pred, target, loss_type="ciou")


def test_ltrb_giou_without_smoothing_equals_xyxy_giou():
    gen = torch.Generator().manual_seed(1)
    pred, target = torch.rand(50, 4, generator=gen) * 10, torch.rand(50, 4, generator=gen) * 10
    as_xyxy = lambda d: torch.stack((-d[:, 0], -d[:, 1], d[:, 2], d[:, 3]), dim=1)  # noqa: E731
    ltrb = ltrb_iou_loss(pred, target, smooth=0.0, reduction="none")
    xyxy = giou_loss_xyxy(as_xyxy(pred), as_xyxy(target))
    assert torch.allclose(ltrb, xyxy, atol=1e-5)
    # a disjoint xyxy pair: iou 0, union 2, enclosing box 3 -> loss 1 + 1/3
    disjoint = giou_loss_xyxy(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([[2.0, 0, 3, 1]]))
    assert disjoint.item() == pytest.approx(1 + 1 / 3, rel=1e-5)


def test_mean_over_processes_is_identity_without_distributed():
    value = torch.tensor([3.0, 4.0])
    assert torch.equal(mean_over_processes(value), value)
