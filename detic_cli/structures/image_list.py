"""A batch of images of different sizes padded into one tensor."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class ImageList:
    """`tensor` is (B, C, Hpad, Wpad); `image_sizes[i]` is the (h, w) of image i before padding."""

    def __init__(self, tensor: torch.Tensor, image_sizes: list[tuple[int, int]]) -> None:
        self.tensor = tensor
        self.image_sizes = image_sizes

    def __len__(self) -> int:
        return len(self.image_sizes)

    @staticmethod
    def from_tensors(tensors: list[torch.Tensor], size_divisibility: int = 0, pad_value: float = 0.0) -> ImageList:
        """Pad each (C, H, W) tensor at the bottom/right to a common size divisible by `size_divisibility`."""
        sizes = [(int(t.shape[-2]), int(t.shape[-1])) for t in tensors]
        max_h = max(s[0] for s in sizes)
        max_w = max(s[1] for s in sizes)
        if size_divisibility > 1:
            d = size_divisibility
            max_h = (max_h + d - 1) // d * d
            max_w = (max_w + d - 1) // d * d
        batch = [F.pad(t, (0, max_w - t.shape[-1], 0, max_h - t.shape[-2]), value=pad_value) for t in tensors]
        return ImageList(torch.stack(batch, dim=0), sizes)
