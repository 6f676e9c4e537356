"""Anchor boxes for dense heads, as detectron2's DefaultAnchorGenerator lays them out.

Cell anchors (one set per feature level) are XYXY boxes centred on (0, 0): for every size s and
aspect ratio a (height / width), w = sqrt(s * s / a), h = a * w, computed in float64 and stored in
float32. They are shifted to every cell (x, y) = (offset + j, offset + i) * stride of the grid,
giving, per level, (Hi * Wi * A, 4) XYXY_ABS boxes in input-image pixels, ordered
(row i, column j, cell anchor a).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["DefaultAnchorGenerator", "broadcast_params", "cell_anchors"]


def broadcast_params(params: Sequence, num_levels: int, name: str) -> list[list[float]]:
    """One list of values per level: a flat list (or a single inner list) is repeated for every level."""
    if not isinstance(params, (list, tuple)) or not params:
        raise ValueError(f"anchor {name} must be a non-empty list, got {params!r}")
    if not isinstance(params[0], (list, tuple)):
        return [list(params)] * num_levels
    if len(params) == 1:
        return [list(params[0])] * num_levels
    if len(params) != num_levels:
        raise ValueError(f"anchor {name} has {len(params)} entries for {num_levels} feature levels")
    return [list(p) for p in params]


def cell_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> torch.Tensor:
    """(len(sizes) * len(aspect_ratios), 4) float32 XYXY anchors centred on (0, 0), size-major order."""
    boxes = []
    for size in sizes:
        area = float(size) ** 2.0
        for ratio in aspect_ratios:
            w = math.sqrt(area / ratio)
            h = ratio * w
            boxes.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
    return torch.tensor(boxes, dtype=torch.float64).float()


class DefaultAnchorGenerator(nn.Module):
    """Anchors for a list of feature maps with strides `strides`.

    `offset` is the position of the first anchor centre in units of stride (0.0 = the image's
    top-left corner, as the C4 configs use; 0.5 = half a stride). Grid anchors are cached per
    (level, grid size, device).
    """

    box_dim = 4

    def __init__(self, *, sizes: Sequence, aspect_ratios: Sequence, strides: Sequence[int],
                 offset: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= offset < 1.0:
            raise ValueError(f"anchor offset must be in [0, 1), got {offset}")
        self.strides = [int(s) for s in strides]
        self.offset = float(offset)
        levels = len(self.strides)
        per_level = zip(broadcast_params(sizes, levels, "sizes"),
                        broadcast_params(aspect_ratios, levels, "aspect_ratios"), strict=True)
        for i, (s, a) in enumerate(per_level):
            self.register_buffer(f"cell_anchors_{i}", cell_anchors(s, a), persistent=False)
        self._cache: dict[tuple, torch.Tensor] = {}

    @property
    def num_cell_anchors(self) -> list[int]:
        """Anchors per feature cell, per level (15 for 5 sizes x 3 ratios)."""
        return [len(getattr(self, f"cell_anchors_{i}")) for i in range(len(self.strides))]

    def grid_anchors(self, level: int, height: int, width: int) -> torch.Tensor:
        """(height * width * A, 4) float32 XYXY anchors of one level for a (height, width) feature map."""
        base = getattr(self, f"cell_anchors_{level}")
        key = (level, height, width, base.device)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        stride = self.strides[level]
        shifts_x = torch.arange(self.offset * stride, width * stride, step=stride, dtype=torch.float32,
                                device=base.device)
        shifts_y = torch.arange(self.offset * stride, height * stride, step=stride, dtype=torch.float32,
                                device=base.device)
        shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
        shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
        shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
        anchors = (shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4)
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[key] = anchors
        return anchors

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """One (Hi * Wi * A, 4) XYXY anchor tensor per (B, C, Hi, Wi) feature map."""
        if len(features) != len(self.strides):
            raise ValueError(f"expected {len(self.strides)} feature maps, got {len(features)}")
        return [self.grid_anchors(i, int(f.shape[-2]), int(f.shape[-1])) for i, f in enumerate(features)]

    def _apply(self, fn, recurse: bool = True):
        self._cache = {}
        return super()._apply(fn, recurse)
