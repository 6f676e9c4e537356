"""ROI-head training targets: IoU matching, balanced sampling, gt appended, later-stage relabelling."""

from __future__ import annotations

import torch

from detic_cli.modeling.matching import match_by_iou, subsample_labels
from detic_cli.modeling.proposal import rpn_loss
from detic_cli.modeling.roi_heads.sampling import (
    GT_PROPOSAL_LOGIT,
    ProposalSampler,
    add_ground_truth_to_proposals,
    match_and_label,
    select_foreground,
)
from detic_cli.structures import Boxes, Instances

SIZE = (100, 120)


def _proposals(boxes, logits=None) -> Instances:
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    logits = torch.zeros(len(boxes)) if logits is None else torch.tensor(logits, dtype=torch.float32)
    return Instances(SIZE, proposal_boxes=Boxes(boxes), objectness_logits=logits)


def _gt(boxes, classes) -> Instances:
    return Instances(SIZE, gt_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)),
                     gt_classes=torch.tensor(classes, dtype=torch.int64))


def test_rpn_loss_reexports_the_shared_matcher():
    assert rpn_loss.match_by_iou is match_by_iou and rpn_loss.subsample_labels is subsample_labels


def test_matcher_thresholds_are_half_open_and_without_low_quality_matches():
    iou = torch.tensor([[0.59, 0.3, 0.2], [0.1, 0.6, 0.3]])
    matched, labels = match_by_iou(iou, [0.6], [0, 1], False)
    assert matched.tolist() == [0, 1, 1] and labels.tolist() == [0, 1, 0]
    _, labels = match_by_iou(iou, [0.6], [0, 1], True)
    assert labels.tolist() == [1, 1, 0]  # 0.59 is gt 0's best match


def test_subsample_labels_caps_the_foreground_fraction():
    torch.manual_seed(0)
    labels = torch.tensor([3] * 10 + [5] * 30 + [-1] * 5)  # 5 = background
    fg, bg = subsample_labels(labels, 16, 0.25, 5)
    assert len(fg) == 4 and len(bg) == 12
    assert (labels[fg] == 3).all() and (labels[bg] == 5).all()
    assert len(set(fg.tolist())) == 4 and len(set(bg.tolist())) == 12


def test_ground_truth_is_appended_with_a_confident_logit():
    out = add_ground_truth_to_proposals([_proposals([[0, 0, 10, 10]], [0.3])], [_gt([[5, 5, 50, 60]], [2])])[0]
    assert out.proposal_boxes.tensor.tolist() == [[0, 0, 10, 10], [5, 5, 50, 60]]
    assert out.objectness_logits[1].item() == torch.tensor(GT_PROPOSAL_LOGIT).item() and 23.0 < GT_PROPOSAL_LOGIT < 23.1


def test_sampler_labels_foreground_background_and_targets():
    torch.manual_seed(0)
    gt = _gt([[10, 10, 50, 50], [60, 20, 110, 90]], [4, 1])
    props = _proposals([[12, 10, 50, 50],   # IoU 0.95 with gt 0
                        [60, 30, 110, 90],  # IoU 0.86 with gt 1
                        [30, 10, 70, 50],   # IoU 0.33: background
                        [0, 60, 20, 99]])   # background
    sampler = ProposalSampler(iou_thresholds=[0.6], iou_labels=[0, 1], batch_size_per_image=100,
                              positive_fraction=0.5, append_gt=True)
    (out,) = sampler([props], [gt], num_classes=7)
    assert len(out) == 6  # 4 proposals + 2 gt boxes, all sampled
    fg = out.gt_classes != 7
    assert fg[:4].all() and not fg[4:].any()  # foreground first
    by_box = {tuple(b.tolist()): (int(c), tuple(g.tolist()), int(i))
              for b, c, g, i in zip(out.proposal_boxes.tensor, out.gt_classes, out.gt_boxes.tensor, out.gt_index)}
    assert by_box[(12.0, 10.0, 50.0, 50.0)] == (4, (10.0, 10.0, 50.0, 50.0), 0)
    assert by_box[(60.0, 30.0, 110.0, 90.0)] == (1, (60.0, 20.0, 110.0, 90.0), 1)
    assert by_box[(60.0, 20.0, 110.0, 90.0)][0] == 1  # the appended gt box is its own positive
    assert by_box[(30.0, 10.0, 70.0, 50.0)][0] == 7


def test_sampler_budget_and_fraction():
    torch.manual_seed(0)
    gt = _gt([[10, 10, 50, 50]], [0])
    near = [[10 + d, 10, 50 + d, 50] for d in range(8)]  # IoU >= 0.6 for d <= 10
    far = [[60, 60 + d, 80, 80 + d] for d in range(20)]
    sampler = ProposalSampler(iou_thresholds=[0.5], iou_labels=[0, 1], batch_size_per_image=8,
                              positive_fraction=0.25, append_gt=False)
    (out,) = sampler([_proposals(near + far)], [gt], num_classes=3)
    assert len(out) == 8 and int((out.gt_classes == 0).sum()) == 2 and int((out.gt_classes == 3).sum()) == 6


def test_sampler_without_ground_truth_gives_background():
    torch.manual_seed(0)
    sampler = ProposalSampler(batch_size_per_image=4, positive_fraction=0.25)
    (out,) = sampler([_proposals([[0, 0, 10, 10]] * 6)], [_gt([], [])], num_classes=5)
    assert len(out) == 4 and (out.gt_classes == 5).all()
    assert torch.equal(out.gt_boxes.tensor, out.proposal_boxes.tensor) and (out.gt_index == 0).all()


def test_later_stage_relabels_every_proposal_at_its_threshold():
    gt = _gt([[10, 10, 50, 50]], [2])
    props = _proposals([[10, 10, 50, 50], [14, 10, 54, 50], [22, 10, 62, 50]])  # IoU 1, 0.82, 0.54
    (out,) = match_and_label([props], [gt], iou_threshold=0.7, num_classes=3)
    assert out.gt_classes.tolist() == [2, 2, 3] and len(out) == 3
    (out,) = match_and_label([_proposals([[0, 0, 5, 5]])], [_gt([], [])], iou_threshold=0.7,
                             num_classes=3)
    assert out.gt_classes.tolist() == [3]
    fg = select_foreground([props], 3)[0]
    assert len(fg) == 2
