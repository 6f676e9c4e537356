"""Dropping proposals that cannot reach the score threshold (score_bound.py) leaves the cascade's detections
bit for bit as they were."""

from __future__ import annotations

import pytest
import torch

from detic_cli.layers.box_transform import Box2BoxTransform
from detic_cli.layers.roi_pooler import ROIPooler
from detic_cli.modeling.roi_heads import cascade as cascade_module
from detic_cli.modeling.roi_heads.box_head import FastRCNNConvFCHead
from detic_cli.modeling.roi_heads.cascade import DeticCascadeROIHeads
from detic_cli.modeling.roi_heads.fast_rcnn import DeticBoxPredictor
from detic_cli.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead
from detic_cli.modeling.roi_heads.score_bound import hopeful_proposals
from detic_cli.structures import Boxes, Instances

SIZE = (512, 640)
SCALES = [1 / 8, 1 / 16, 1 / 32]
WEIGHTS = [(10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0)]


def _proposals(scores: list[float]) -> Instances:
    boxes = torch.arange(len(scores) * 4, dtype=torch.float32).view(-1, 4)
    return Instances(SIZE, proposal_boxes=Boxes(boxes), objectness_logits=torch.tensor(scores))


def test_keeps_order_and_drops_only_scores_whose_root_is_not_above_the_threshold():
    scores = [0.5, 0.04, 0.09, 0.0901, float("nan"), 1.0, 0.01]
    out = hopeful_proposals([_proposals(scores)], 0.3, min_rows=2)[0]
    assert torch.equal(out.objectness_logits[[0, 1, 3]], torch.tensor([0.5, 0.0901, 1.0]))
    assert torch.isnan(out.objectness_logits[2]) and len(out) == 4  # NaN is never dropped
    assert torch.equal(out.proposal_boxes.tensor[:, 0], torch.tensor([0.0, 12, 16, 20]))


def test_keeps_the_best_min_rows_when_fewer_survive_and_short_lists_whole():
    scores = [0.2, 0.01, 0.05, 0.5, 0.03, 0.02]
    out = hopeful_proposals([_proposals(scores)], 0.6, min_rows=3)[0]
    assert out.objectness_logits.tolist() == pytest.approx([0.2, 0.05, 0.5])
    assert len(hopeful_proposals([_proposals(scores)], 0.6, min_rows=6)[0]) == 6
    assert len(hopeful_proposals([_proposals(scores[:3])], 0.0, min_rows=1)[0]) == 3  # nothing hopeless


def _cascade(mult_proposal_score: bool, use_sigmoid_ce: bool = True, score_thresh: float = 0.3) -> DeticCascadeROIHeads:
    torch.manual_seed(0)
    heads = [FastRCNNConvFCHead(in_channels=16, resolution=7, num_fc=2, fc_dim=256) for _ in WEIGHTS]
    predictors = [DeticBoxPredictor(input_size=256, num_classes=20, box2box_transform=Box2BoxTransform(w),
                                    use_sigmoid_ce=use_sigmoid_ce, zs_weight_dim=64) for w in WEIGHTS]
    features = ["p3", "p4", "p5"]
    model = DeticCascadeROIHeads(
        in_features=features, box_pooler=ROIPooler(output_size=7, scales=SCALES), box_heads=heads,
        box_predictors=predictors, mask_in_features=features, mask_pooler=ROIPooler(output_size=14, scales=SCALES),
        mask_head=MaskRCNNConvUpsampleHead(in_channels=16, num_conv=2, conv_dim=16), score_thresh=score_thresh,
        mult_proposal_score=mult_proposal_score, one_class_per_proposal=True)
    model.set_vocabulary(torch.randn(20, 64))
    return model.eval()


def _random_proposals(generator: torch.Generator, count: int) -> Instances:
    """Boxes of 8-500 px (all three pooling levels) and proposal scores uniform in [0, 1)."""
    wh = 8 + torch.rand(count, 2, generator=generator) ** 2 * 492
    xy = torch.rand(count, 2, generator=generator) * (torch.tensor([SIZE[1], SIZE[0]]) - wh).clamp(min=1)
    boxes = torch.cat([xy, xy + wh], dim=1)
    return Instances(SIZE, proposal_boxes=Boxes(boxes), objectness_logits=torch.rand(count, generator=generator))


@pytest.mark.parametrize(("use_sigmoid_ce", "score_thresh"), [(True, 0.3), (False, 0.2)])
def test_cascade_detections_unchanged_bit_for_bit(monkeypatch, use_sigmoid_ce, score_thresh):
    model = _cascade(mult_proposal_score=True, use_sigmoid_ce=use_sigmoid_ce, score_thresh=score_thresh)
    generator = torch.Generator().manual_seed(1)
    features = {f"p{3 + i}": torch.randn(2, 16, SIZE[0] // 8 // 2**i, SIZE[1] // 8 // 2**i, generator=generator)
                for i in range(3)}
    proposals = [_random_proposals(generator, 300), _random_proposals(generator, 250)]
    kept = []
    monkeypatch.setattr(cascade_module, "hopeful_proposals",
                        lambda p, t: kept.append(hopeful_proposals(p, t)) or kept[-1])
    with torch.no_grad():
        pruned = model(features, proposals)
        monkeypatch.setattr(model, "_prune_hopeless", lambda p: False)
        full = model(features, proposals)
    assert all(64 <= len(p) < n for p, n in zip(kept[0], (300, 250)))
    assert sum(len(i) for i in full) > 10
    for a, b in zip(pruned, full):
        for name in ("pred_classes", "scores", "pred_masks"):
            assert torch.equal(a.get(name), b.get(name)), name
        assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor)


def test_pruning_only_where_it_is_exact():
    proposals = [_random_proposals(torch.Generator().manual_seed(2), 100)]
    with torch.no_grad():
        assert not _cascade(mult_proposal_score=False)._prune_hopeless(proposals)
        model = _cascade(mult_proposal_score=True)
        assert model._prune_hopeless(proposals) == torch.backends.mkl.is_available()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not model._prune_hopeless(proposals)
        model.keep_embeddings = True
        assert not model._prune_hopeless(proposals)
