"""Sigmoid / softmax box-classification losses, the federated class sampling and the class-frequency file."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from detic_cli.modeling.roi_heads.classification_losses import (
    sample_fed_classes,
    sigmoid_ce_loss,
    softmax_ce_loss,
)


def _bce(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return -(t * torch.log(torch.sigmoid(x)) + (1 - t) * torch.log(1 - torch.sigmoid(x)))


def test_sample_fed_classes_keeps_gt_and_fills_up():
    gt = torch.tensor([7, 2, 2, 10, 7])  # 10 = background of C = 10
    weight = torch.ones(10)
    weight[5] = 0.0
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        inds = sample_fed_classes(gt, num_classes=10, num_sample=6, freq_weight=weight, generator=g)
        assert inds[:3].tolist() == [2, 7, 10]
        assert len(inds) == 6 and len(set(inds.tolist())) == 6
        assert 5 not in inds[3:].tolist() and 10 not in inds[3:].tolist()
    # Already enough classes: just the unique gt classes.
    assert sample_fed_classes(gt, num_classes=10, num_sample=2, freq_weight=weight).tolist() == [2, 7, 10]
    # More requested than can be drawn: every drawable class once (never class 5, weight 0).
    inds = sample_fed_classes(gt, num_classes=10, num_sample=50, freq_weight=weight)
    assert sorted(inds.tolist()) == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]
    # No gt at all, and a short freq vector (padded with zeros, as the original extends it).
    inds = sample_fed_classes(torch.zeros(0, dtype=torch.long), num_classes=10, num_sample=3,
                              freq_weight=torch.ones(4))
    assert len(inds) == 3 and set(inds.tolist()) <= {0, 1, 2, 3}


def test_sample_fed_classes_follows_frequency():
    weight = torch.tensor([1.0, 1.0, 98.0])
    g = torch.Generator().manual_seed(1)
    draws = [int(sample_fed_classes(torch.tensor([0]), num_classes=3, num_sample=2, freq_weight=weight,
                                    generator=g)[1]) for _ in range(300)]
    assert 0 not in draws
    assert draws.count(2) > 270  # p = 98 / 99


def test_sigmoid_ce_matches_formula_and_ignores_background():
    torch.manual_seed(0)
    logits = torch.randn(5, 4, requires_grad=True)  # C = 3
    gt = torch.tensor([0, 2, 3, 1, 3])
    loss = sigmoid_ce_loss(logits, gt)
    target = F.one_hot(gt, 4).float()[:, :3]
    expected = _bce(logits[:, :3], target).sum() / 5
    assert torch.allclose(loss, expected)
    loss.backward()
    assert torch.all(logits.grad[:, 3] == 0)
    assert torch.all(logits.grad[:, :3] != 0)


def test_sigmoid_ce_fed_and_valid_columns():
    torch.manual_seed(0)
    logits = torch.randn(6, 6, requires_grad=True)  # C = 5
    gt = torch.tensor([1, 5, 3, 5, 1, 5])
    fed = torch.tensor([1, 3, 5, 4])
    loss = sigmoid_ce_loss(logits, gt, fed_classes=fed)
    target = F.one_hot(gt, 6).float()[:, :5]
    mask = torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0])
    assert torch.allclose(loss, (_bce(logits[:, :5], target) * mask).sum() / 6)
    loss.backward()
    assert torch.all(logits.grad[:, [0, 2, 5]] == 0)
    assert torch.all(logits.grad[:, [1, 3, 4]] != 0)
    valid = torch.tensor([True, True, True, False, True])
    both = sigmoid_ce_loss(logits, gt, fed_classes=fed, valid_classes=valid)
    assert torch.allclose(both, (_bce(logits[:, :5], target) * mask * valid.float()).sum() / 6)


def test_sigmoid_ce_edge_cases():
    empty = torch.zeros(0, 4, requires_grad=True)
    assert sigmoid_ce_loss(empty, torch.zeros(0, dtype=torch.long)).item() == 0.0
    one_class = torch.tensor([[0.5, 0.0], [-1.0, 0.0]])
    loss = sigmoid_ce_loss(one_class, torch.tensor([0, 1]))
    assert torch.allclose(loss, (_bce(torch.tensor(0.5), torch.tensor(1.0)) + _bce(torch.tensor(-1.0),
                                                                                   torch.tensor(0.0))) / 2)


def test_softmax_ce_plain_fed_and_valid():
    torch.manual_seed(0)
    logits = torch.randn(5, 4, requires_grad=True)
    gt = torch.tensor([0, 1, 3, 2, 1])
    assert torch.allclose(softmax_ce_loss(logits, gt), F.cross_entropy(logits, gt))
    per_row = F.cross_entropy(logits, gt, reduction="none")
    # fed set {1}: class-0 and class-2 targets drop out, background always counts.
    fed = softmax_ce_loss(logits, gt, fed_classes=torch.tensor([1]))
    keep = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])
    assert torch.allclose(fed, (per_row * keep).sum() / keep.sum())
    # valid_classes takes precedence over the fed set (IGNORE_ZERO_CATS, as the original).
    valid = softmax_ce_loss(logits, gt, fed_classes=torch.tensor([1]), valid_classes=torch.tensor([1, 1, 0]))
    keep = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0])
    assert torch.allclose(valid, (per_row * keep).sum() / keep.sum())
    assert softmax_ce_loss(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)).item() == 0.0
