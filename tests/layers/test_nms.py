"""nms_top (chunked exact NMS + top-k cut) against torchvision's batched_nms followed by the cut."""

from __future__ import annotations

import pytest
import torch

from detic_cli.layers import nms as nms_module
from detic_cli.layers.nms import nms_top, nms_top_reference


def _boxes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clustered random XYXY boxes (many overlaps at every threshold) and their scores."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n // 8 + 1, 2, generator=g) * 200
    xy = centres[torch.randint(0, len(centres), (n,), generator=g)] + torch.randn(n, 2, generator=g) * 4
    wh = torch.rand(n, 2, generator=g) * 40 + 1
    boxes = torch.cat([xy, xy + wh], 1)
    boxes[::50, 2:] = boxes[::50, :2]  # empty boxes (zero area, IoU 0/0)
    return boxes, torch.rand(n, generator=g)


@pytest.mark.parametrize("threshold", [0.3, 0.6, 0.9])
@pytest.mark.parametrize("top", [1, 37, 256, 5000])
def test_equals_batched_nms_then_cut(threshold, top):
    boxes, scores = _boxes(1500, seed=int(threshold * 10) + top)
    with torch.no_grad():
        got = nms_top(boxes, scores, threshold, top, chunk=64)
    expected = nms_top_reference(boxes, scores, threshold, top)
    assert got.dtype == torch.int64
    assert torch.equal(got, expected)


def test_duplicate_boxes_and_tied_scores():
    """Equal boxes (IoU exactly 1) and exact score ties: the same boxes survive in the same order."""
    boxes, scores = _boxes(600, seed=3)
    boxes[300:] = boxes[:300]
    scores = (scores * 20).round() / 20  # 21 distinct values: ties everywhere, also at the cut
    for top in (5, 40, 1000):
        with torch.no_grad():
            assert torch.equal(nms_top(boxes, scores, 0.5, top, chunk=32), nms_top_reference(boxes, scores, 0.5, top))
    distinct = torch.randperm(600, generator=torch.Generator().manual_seed(0)).float()
    with torch.no_grad():  # distinct scores: the chunked path answers (no fallback)
        assert torch.equal(nms_top(boxes, distinct, 0.7, 50, chunk=32), nms_top_reference(boxes, distinct, 0.7, 50))


def test_threshold_compared_like_torchvision():
    """IoU exactly at float32(threshold): torchvision compares in double, so 0.9f (< 0.9) is not suppressed."""
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 9.0], [0.0, 0.0, 10.0, 9.5]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    for threshold in (0.9, 0.95, float(torch.tensor(0.9))):
        with torch.no_grad():
            assert torch.equal(nms_top(boxes, scores, threshold, 10), nms_top_reference(boxes, scores, threshold, 10))


def test_empty_and_gradient_fallback():
    empty = nms_top(torch.zeros(0, 4), torch.zeros(0), 0.5, 10)
    assert empty.shape == (0,)
    boxes, scores = _boxes(100, seed=1)
    boxes.requires_grad_(True)
    assert torch.equal(nms_top(boxes, scores, 0.5, 20), nms_top_reference(boxes.detach(), scores, 0.5, 20))


def test_tied_duplicates_keep_the_lower_index_without_fallback(monkeypatch):
    """Identical boxes with identical scores (distinct otherwise): torchvision keeps the lower index (its sort is
    stable); the chunked path must agree without falling back to torchvision."""
    boxes, _ = _boxes(1200, seed=4)
    scores = torch.randperm(1200, generator=torch.Generator().manual_seed(1)).float() / 1200
    perm = torch.tensor([i for i in torch.randperm(1200, generator=torch.Generator().manual_seed(2)).tolist()
                         if i % 50])  # not the empty boxes (IoU 0/0: both copies would survive, tied)
    src, dst = perm[:200], perm[200:400]
    boxes[dst], scores[dst] = boxes[src], scores[src]
    expected = [nms_top_reference(boxes, scores, 0.9, top) for top in (30, 300)]
    monkeypatch.setattr(nms_module, "nms_top_reference", lambda *a: pytest.fail("fell back to torchvision"))
    with torch.no_grad():
        for want, top in zip(expected, (30, 300)):
            assert torch.equal(nms_top(boxes, scores, 0.9, top, chunk=100), want)
