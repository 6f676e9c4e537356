"""Bring detections from the resized network input back to the original image: boxes and pasted masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from detic_cli.structures import Boxes, Instances


def paste_masks_in_image(masks: torch.Tensor, boxes: torch.Tensor, image_size: tuple[int, int],
                         threshold: float = 0.5) -> torch.Tensor:
    """(N, M, M) mask probabilities placed into their (N, 4) XYXY boxes -> (N, H, W) bool masks.

    Each mask is resampled bilinearly (grid_sample, align_corners=False) at pixel centres
    inside its box, then thresholded (>= threshold).
    """
    h, w = image_size
    out = torch.zeros((len(masks), h, w), dtype=torch.bool, device=masks.device)
    for i in range(len(masks)):
        box = boxes[i : i + 1]
        x0 = int(torch.clamp(box[0, 0].floor() - 1, min=0))
        y0 = int(torch.clamp(box[0, 1].floor() - 1, min=0))
        x1 = int(torch.clamp(box[0, 2].ceil() + 1, max=w))
        y1 = int(torch.clamp(box[0, 3].ceil() + 1, max=h))
        if x1 <= x0 or y1 <= y0:
            continue
        out[i, y0:y1, x0:x1] = _paste_one(masks[i], box[0], x0, y0, x1, y1) >= threshold
    return out


def _paste_one(mask: torch.Tensor, box: torch.Tensor, x0: int, y0: int, x1: int, y1: int) -> torch.Tensor:
    ys = (torch.arange(y0, y1, device=mask.device, dtype=torch.float32) + 0.5 - box[1]) / (box[3] - box[1]) * 2 - 1
    xs = (torch.arange(x0, x1, device=mask.device, dtype=torch.float32) + 0.5 - box[0]) / (box[2] - box[0]) * 2 - 1
    grid = torch.stack([xs[None, :].expand(len(ys), len(xs)), ys[:, None].expand(len(ys), len(xs))], dim=2)
    sampled = F.grid_sample(mask[None, None].float(), grid[None].to(torch.float32), align_corners=False)
    return sampled[0, 0]


def detector_postprocess(results: Instances, output_height: int, output_width: int,
                         mask_threshold: float = 0.5) -> Instances:
    """Rescale `pred_boxes` from `results.image_size` (network input) to the output size, clip, drop
    empty boxes, and paste `pred_masks` (R, 1, M, M) into (R, H, W) bool masks."""
    scale_x = output_width / results.image_size[1]
    scale_y = output_height / results.image_size[0]
    out = Instances((output_height, output_width), **results.get_fields())
    boxes: Boxes = out.pred_boxes
    boxes.scale(scale_x, scale_y)
    boxes.clip(out.image_size)
    out = out[boxes.nonempty()]
    if out.has("pred_masks"):
        out.pred_masks = paste_masks_in_image(out.pred_masks[:, 0], out.pred_boxes.tensor, out.image_size,
                                              mask_threshold)
    return out
