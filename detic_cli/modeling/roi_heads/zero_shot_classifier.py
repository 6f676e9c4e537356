"""Open-vocabulary classifier: project region features, compare with class text embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_class_weights(embeddings: torch.Tensor, normalize: bool) -> torch.Tensor:
    """(C, D) class embeddings -> (D, C + 1) classifier with a zero background column, L2-normalised per column."""
    weight = embeddings.to(torch.float32).t().contiguous()
    weight = torch.cat([weight, weight.new_zeros((weight.shape[0], 1))], dim=1)
    return F.normalize(weight, p=2, dim=0) if normalize else weight


class ZeroShotClassifier(nn.Module):
    """logits = temperature * normalize(linear(x)) @ zs_weight (+ cls_bias); (N, C + 1), last = background.

    `zs_weight` (D x (C + 1)) is a buffer set from the vocabulary (`set_embeddings`), never trained.
    """

    def __init__(self, *, input_size: int, num_classes: int, zs_weight_dim: int = 512, use_bias: float = 0.0,
                 norm_weight: bool = True, norm_temperature: float = 50.0) -> None:
        super().__init__()
        self.norm_weight = norm_weight
        self.norm_temperature = norm_temperature
        self.use_bias = use_bias < 0
        if self.use_bias:
            self.cls_bias = nn.Parameter(torch.ones(1) * use_bias)
        self.linear = nn.Linear(input_size, zs_weight_dim)
        self.register_buffer("zs_weight", torch.zeros(zs_weight_dim, num_classes + 1), persistent=False)

    @property
    def num_classes(self) -> int:
        return self.zs_weight.shape[1] - 1

    def set_embeddings(self, embeddings: torch.Tensor) -> None:
        """Replace the vocabulary with (C, D) embeddings (any C)."""
        if embeddings.dim() != 2 or embeddings.shape[1] != self.linear.out_features:
            raise ValueError(f"class embeddings must be (C, {self.linear.out_features}), "
                             f"got {tuple(embeddings.shape)}")
        self.zs_weight = make_class_weights(embeddings, self.norm_weight).to(self.linear.weight.device)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, input_size) box features -> (N, D) classifier-space embeddings: the projection, L2-normalised
        per row when `norm_weight` (Detic's configs), as scored against the class embeddings."""
        x = self.linear(x)
        return F.normalize(x, p=2, dim=1) if self.norm_weight else x

    def score_embeddings(self, embedded: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Logits (N, K) of `embed` output (N, D) against a (D, K) classifier (`make_class_weights` columns)."""
        x = self.norm_temperature * embedded if self.norm_weight else embedded
        x = x @ weight.to(x.dtype)
        if self.use_bias:
            x = x + self.cls_bias
        return x

    def forward(self, x: torch.Tensor, classifier: torch.Tensor | None = None) -> torch.Tensor:
        """x (N, input_size); `classifier` (C', D) overrides the vocabulary for this call (training)."""
        weight = self.zs_weight if classifier is None else make_class_weights(classifier, self.norm_weight)[:, :-1]
        return self.score_embeddings(self.embed(x), weight)
