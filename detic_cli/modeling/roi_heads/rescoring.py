"""Region embeddings of detections, and the scoring that turns them back into class scores.

The ROI heads score a region against a vocabulary as: per stage k, the box feature is projected and
L2-normalised (the classifier-space embedding e_k, D = 512 for CLIP ViT-B/32 vocabularies), logits =
temperature * e_k @ w (w: the L2-normalised class embeddings, a zero background column last) + the
stage's bias; probabilities by sigmoid (or softmax); the final score is their mean over the S stages
and, with MULT_PROPOSAL_SCORE, the geometric mean of that with the proposal score. Keeping every
stage's e_k and the proposal score of each detection is enough to score the same boxes against any
other vocabulary without running the network again (`RegionScorer.class_scores`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from detic_cli.modeling.roi_heads.zero_shot_classifier import make_class_weights
from detic_cli.structures import Instances


@dataclass(frozen=True)
class RegionScorer:
    """The scoring terms of one model's ROI heads (plain numbers; no reference to the model).

    temperature: NORM_TEMP when the embeddings are L2-normalised (NORM_WEIGHT), None otherwise;
    biases: each stage's learned classifier bias (USE_BIAS < 0), or None; sigmoid: sigmoid (True)
    or softmax class probabilities; mult_proposal_score: geometric mean with the proposal score.
    """

    temperature: float | None
    biases: tuple[float, ...] | None
    sigmoid: bool
    mult_proposal_score: bool

    def class_scores(self, embeddings: np.ndarray | torch.Tensor, proposal_scores: np.ndarray | torch.Tensor,
                     class_embeddings: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N, C) float32 scores in [0, 1] of N regions for C classes.

        embeddings: (N, S, D) per-stage region embeddings; proposal_scores: (N,) in [0, 1];
        class_embeddings: (C, D) text embeddings (unnormalised, as a vocabulary .npy).
        """
        emb = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
        weight = make_class_weights(torch.as_tensor(np.asarray(class_embeddings, dtype=np.float32)),
                                    self.temperature is not None)
        if emb.ndim != 3 or emb.shape[2] != weight.shape[0]:
            raise ValueError(f"region embeddings must be (N, S, {weight.shape[0]}), got {tuple(emb.shape)}")
        stages = emb.shape[1]
        probs = []
        for k in range(stages):
            x = self.temperature * emb[:, k] if self.temperature is not None else emb[:, k]
            logits = x @ weight
            if self.biases is not None:
                logits = logits + self.biases[k]
            probs.append(logits.sigmoid() if self.sigmoid else logits.softmax(dim=-1))
        scores = sum(probs) / stages
        if self.mult_proposal_score:
            scores = (scores * torch.as_tensor(np.asarray(proposal_scores, dtype=np.float32))[:, None]) ** 0.5
        return scores[:, :-1].numpy()


def region_scorer(predictors: list, *, mult_proposal_score: bool) -> RegionScorer:
    """The RegionScorer of a list of DeticBoxPredictor (one per stage)."""
    classifiers = [p.cls_score for p in predictors]
    first = classifiers[0]
    biases = tuple(float(c.cls_bias.detach().float().reshape(-1)[0]) for c in classifiers) if first.use_bias \
        else None
    return RegionScorer(temperature=float(first.norm_temperature) if first.norm_weight else None, biases=biases,
                        sigmoid=bool(predictors[0].use_sigmoid_ce), mult_proposal_score=mult_proposal_score)


def attach_embeddings(instances: list[Instances], stage_embeddings: list[torch.Tensor],
                      proposal_scores: list[torch.Tensor]) -> None:
    """Give each image's detections `pred_embeddings` (N, S, D) and `proposal_scores` (N,) from its
    `proposal_rows` (removed). stage_embeddings[k]: (R_total, D) over the batch, images in order."""
    counts = [len(s) for s in proposal_scores]
    per_stage = [e.split(counts) for e in stage_embeddings]
    for i, inst in enumerate(instances):
        rows = inst.proposal_rows
        inst.remove("proposal_rows")
        inst.pred_embeddings = torch.stack([stage[i][rows] for stage in per_stage], dim=1).float()
        inst.proposal_scores = proposal_scores[i][rows].float()
