"""Caption loss: image-box vs. caption logits, negative weighting, offsets and the cross-process gather."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from detic_cli.modeling.roi_heads.caption_loss import caption_logits_loss, caption_loss, gather_caption_features
from detic_cli.modeling.roi_heads.zero_shot_classifier import ZeroShotClassifier


def _manual(logits: torch.Tensor, offset: int, neg_weight: float) -> torch.Tensor:
    total = torch.zeros(())
    for i in range(logits.shape[0]):
        for j in range(logits.shape[1]):
            x = logits[i, j]
            if j == i + offset:
                total = total + F.softplus(-x)  # -log sigmoid(x)
            else:
                total = total + neg_weight * F.softplus(x)  # -log(1 - sigmoid(x))
    return total / logits.shape[0]


def test_caption_logits_loss_values():
    torch.manual_seed(0)
    logits = torch.randn(3, 3)
    assert torch.allclose(caption_logits_loss(logits), _manual(logits, 0, 1.0))
    wide = torch.randn(2, 6)
    assert torch.allclose(caption_logits_loss(wide, target_offset=2, neg_weight=0.125), _manual(wide, 2, 0.125))
    assert caption_logits_loss(torch.zeros(0, 4)).item() == 0.0


def test_caption_loss_from_features_matches_classifier():
    torch.manual_seed(0)
    clf = ZeroShotClassifier(input_size=12, num_classes=3, zs_weight_dim=8, use_bias=-2.0, norm_temperature=50.0)
    x = torch.randn(4, 12)
    captions = torch.randn(4, 8)
    region = clf.linear(x)
    loss = caption_loss(region, captions, bias=clf.cls_bias, norm_temperature=50.0)
    expected = caption_logits_loss(clf(x, classifier=captions))
    assert torch.allclose(loss, expected, atol=1e-5)
    logits = 50.0 * F.normalize(region, dim=1) @ F.normalize(captions, dim=1).t() - 2.0
    assert torch.allclose(loss, _manual(logits.detach(), 0, 1.0), atol=1e-4)


def test_caption_loss_gradient_reaches_regions():
    torch.manual_seed(0)
    region = torch.randn(2, 8, requires_grad=True)
    loss = caption_loss(region, torch.randn(2, 8), normalize=False)
    loss.backward()
    assert torch.all(region.grad.abs().sum(dim=1) > 0)


def test_gather_without_process_group_is_identity():
    feats = torch.randn(3, 8)
    out, offset = gather_caption_features(feats, num_rows=3, dim=8)
    assert out is feats and offset == 0
    assert gather_caption_features(None, num_rows=3, dim=8) == (None, 0)


def _worker(rank: int, init_file: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=3)
    try:
        feats = {0: torch.full((2, 4), 1.0), 1: None, 2: torch.full((3, 4), 3.0)}[rank]
        out, offset = gather_caption_features(feats, num_rows=5, dim=4)
        results[rank] = (None if out is None else out.tolist(), offset)
    finally:
        dist.destroy_process_group()


def test_gather_across_processes(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(str(tmp_path / "init"), results), nprocs=3, join=True)
    expected = [[1.0] * 4] * 2 + [[0.0] * 4] * 5 + [[3.0] * 4] * 3
    assert results[0] == (expected, 0)
    assert results[1] == (None, 2)
    assert results[2] == (expected, 7)
