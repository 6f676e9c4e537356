"""Deformable DETR post-processing as the Detic wrapper does it: top-k over (query, class) pairs of
the sigmoid scores, several classes per query, boxes scaled to the original size without clipping."""

from __future__ import annotations

import torch

from detic_cli.modeling.detr.meta_arch import DeformableDetr


def test_top_k_over_query_class_pairs_without_clipping():
    wrapper = DeformableDetr.__new__(DeformableDetr)
    torch.nn.Module.__init__(wrapper)
    wrapper.test_topk = 4
    logits = torch.tensor([[[2.0, -5.0, 1.0],     # query 0: classes 0 and 2 both in the top 4
                            [-3.0, 3.0, -4.0],    # query 1: class 1 is the best pair overall
                            [-1.0, -6.0, -2.0]]])  # query 2: only class 0 makes it
    boxes = torch.tensor([[[0.1, 0.5, 0.4, 0.2], [0.5, 0.5, 1.0, 1.0], [0.95, 0.05, 0.3, 0.3]]])
    (inst,) = wrapper.post_process({"pred_logits": logits, "pred_boxes": boxes}, [(200, 100)])
    assert inst.image_size == (200, 100)
    torch.testing.assert_close(inst.scores, torch.tensor([3.0, 2.0, 1.0, -1.0]).sigmoid())
    assert inst.pred_classes.tolist() == [1, 0, 2, 0]
    # (cx, cy, w, h) in [0, 1] -> xyxy in original pixels (x by width 100, y by height 200), unclipped
    expected = torch.tensor([[0.0, 0.0, 100.0, 200.0],
                             [-10.0, 80.0, 30.0, 120.0],
                             [-10.0, 80.0, 30.0, 120.0],
                             [80.0, -20.0, 110.0, 40.0]])
    torch.testing.assert_close(inst.pred_boxes.tensor, expected)
