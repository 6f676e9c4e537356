"""Proposals that cannot reach the score threshold, dropped before the cascade (inference, exact).

With `mult_proposal_score` a detection's score is sqrt(mean stage probability x proposal score), and the
mean of probabilities is at most 1, so a proposal whose sqrt(score) is not above the threshold yields no
detection whatever its box heads say. The inequality survives float32 rounding (the product of a score
with a number <= 1 rounds to at most the score; sqrt is correctly rounded), so dropping those proposals
leaves the detections bit for bit as they were (for finite features): every other step of the box heads
treats each proposal on its own, and their GEMMs keep at least `MIN_GEMM_ROWS` rows, where MKL gives each row
the same bits whatever the row count (1-11 rows take other kernels; measured on x86, hence MKL only).
"""

from __future__ import annotations

import torch

from detic_cli.layers.mlp import MIN_GEMM_ROWS
from detic_cli.structures import Instances


def hopeful_proposals(proposals: list[Instances], score_thresh: float,
                      min_rows: int = MIN_GEMM_ROWS) -> list[Instances]:
    """Per image, the proposals whose sqrt(`objectness_logits`) (scores in [0, 1]) is above `score_thresh`,
    in their original order; where fewer than `min_rows` are, the `min_rows` best scored (or all) stay."""
    return [_hopeful(p, score_thresh, min_rows) for p in proposals]


def _hopeful(proposals: Instances, score_thresh: float, min_rows: int) -> Instances:
    """One image's `hopeful_proposals`."""
    scores = proposals.objectness_logits
    hopeless = scores.sqrt() <= score_thresh  # NaN compares False: kept
    if len(proposals) <= min_rows or not bool(hopeless.any()):
        return proposals
    keep = ~hopeless
    if int(keep.sum()) < min_rows:
        best = torch.topk(scores.nan_to_num(nan=float("inf")), min_rows).indices
        keep[best] = True
    return proposals[keep]
