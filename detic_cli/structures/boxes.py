"""Axis-aligned boxes in XYXY_ABS mode (x1, y1, x2, y2 in pixels of the image they refer to)."""

from __future__ import annotations

import torch


class Boxes:
    """A (N, 4) float tensor of XYXY_ABS boxes with the operations detection needs."""

    def __init__(self, tensor: torch.Tensor) -> None:
        if tensor.numel() == 0:
            tensor = tensor.reshape(-1, 4).to(torch.float32)
        if tensor.dim() != 2 or tensor.shape[-1] != 4:
            raise ValueError(f"Boxes expects an (N, 4) tensor, got {tuple(tensor.shape)}")
        self.tensor = tensor

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __getitem__(self, item) -> Boxes:
        if isinstance(item, int):
            return Boxes(self.tensor[item].view(1, -1))
        return Boxes(self.tensor[item])

    def __repr__(self) -> str:
        return f"Boxes({self.tensor!r})"

    def clone(self) -> Boxes:
        return Boxes(self.tensor.clone())

    def to(self, device: torch.device | str) -> Boxes:
        return Boxes(self.tensor.to(device))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def area(self) -> torch.Tensor:
        """(N,) areas in square pixels."""
        t = self.tensor
        return (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])

    def clip(self, box_size: tuple[int, int]) -> None:
        """Clip in place to an image of (height, width)."""
        h, w = box_size
        x1 = self.tensor[:, 0].clamp(min=0, max=w)
        y1 = self.tensor[:, 1].clamp(min=0, max=h)
        x2 = self.tensor[:, 2].clamp(min=0, max=w)
        y2 = self.tensor[:, 3].clamp(min=0, max=h)
        self.tensor = torch.stack((x1, y1, x2, y2), dim=-1)

    def nonempty(self, threshold: float = 0.0) -> torch.Tensor:
        """(N,) bool: both sides longer than `threshold`."""
        t = self.tensor
        return ((t[:, 2] - t[:, 0]) > threshold) & ((t[:, 3] - t[:, 1]) > threshold)

    def scale(self, scale_x: float, scale_y: float) -> None:
        self.tensor[:, 0::2] *= scale_x
        self.tensor[:, 1::2] *= scale_y

    def get_centers(self) -> torch.Tensor:
        return (self.tensor[:, :2] + self.tensor[:, 2:]) / 2

    @staticmethod
    def cat(boxes_list: list[Boxes]) -> Boxes:
        if not boxes_list:
            return Boxes(torch.empty(0, 4))
        return Boxes(torch.cat([b.tensor for b in boxes_list], dim=0))


def pairwise_iou(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """(N, M) IoU between two sets of XYXY boxes; 0 where the union is empty."""
    a, b = boxes1.tensor, boxes2.tensor
    area1, area2 = boxes1.area(), boxes2.area()
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None, :] - inter
    return torch.where(inter > 0, inter / union, torch.zeros(1, dtype=inter.dtype, device=inter.device))
