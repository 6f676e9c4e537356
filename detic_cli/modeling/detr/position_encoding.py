"""Sine position encodings of Deformable DETR: per feature-map cell and per proposal box."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["PositionEmbeddingSine", "proposal_position_embedding"]


def _frequencies(num_pos_feats: int, temperature: float, device: torch.device) -> torch.Tensor:
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=device)
    return temperature ** (2 * (dim_t // 2) / num_pos_feats)


def _interleave_sin_cos(pos: torch.Tensor) -> torch.Tensor:
    """(..., F) angles -> (..., F): sin of the even, cos of the odd entries, paired as (sin, cos)."""
    return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(-2)


class PositionEmbeddingSine(nn.Module):
    """DETR's 2-D sine encoding, normalised over the valid (unpadded) part of each image.

    forward(mask): mask (B, H, W) bool, True on padding -> (B, 2 * num_pos_feats, H, W) float32,
    channels [y encodings, x encodings]. Positions are the cumulative count of valid cells minus 0.5,
    divided by the valid extent (+1e-6) and multiplied by `scale` (2*pi), so they lie in (0, scale).
    """

    def __init__(self, *, num_pos_feats: int = 128, temperature: float = 10000.0, scale: float = 2 * math.pi) -> None:
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.scale = scale

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        not_mask = ~mask
        y_embed = not_mask.cumsum(1, dtype=torch.float32)
        x_embed = not_mask.cumsum(2, dtype=torch.float32)
        eps = 1e-6
        y_embed = (y_embed - 0.5) / (y_embed[:, -1:, :] + eps) * self.scale
        x_embed = (x_embed - 0.5) / (x_embed[:, :, -1:] + eps) * self.scale
        dim_t = _frequencies(self.num_pos_feats, self.temperature, mask.device)
        pos_x = _interleave_sin_cos(x_embed[:, :, :, None] / dim_t)
        pos_y = _interleave_sin_cos(y_embed[:, :, :, None] / dim_t)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


def proposal_position_embedding(proposals_unact: torch.Tensor, num_pos_feats: int = 128,
                                temperature: float = 10000.0, scale: float = 2 * math.pi) -> torch.Tensor:
    """Sine encoding of two-stage proposals.

    proposals_unact: (N, K, 4) boxes (cx, cy, w, h) as logits (inverse sigmoid of [0, 1] values).
    Returns (N, K, 4 * num_pos_feats): for each of the 4 coordinates, sigmoid(v) * scale encoded
    with interleaved (sin, cos) pairs.
    """
    dim_t = _frequencies(num_pos_feats, temperature, proposals_unact.device)
    pos = proposals_unact.sigmoid() * scale
    return _interleave_sin_cos(pos[:, :, :, None] / dim_t).flatten(2)
