"""Bring detections from the resized network input back to the original image: boxes and pasted masks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from detic_cli.structures import Boxes, Instances


def paste_masks_in_image(masks: torch.Tensor, boxes: torch.Tensor, image_size: tuple[int, int],
                         threshold: float = 0.5) -> torch.Tensor:
    """(N, M, M) mask probabilities placed into their (N, 4) XYXY boxes -> (N, H, W) bool masks.

    Each mask is resampled bilinearly (grid_sample, align_corners=False) at the pixel centres of its box
    (grown by one pixel, clipped to the image), then thresholded (>= threshold). Boxes of similar size are
    resampled together: one grid_sample per batch of regions padded to the batch's largest, the same
    arithmetic per pixel as one call per box.
    """
    h, w = image_size
    flat = torch.zeros(len(masks) * h * w + 1, dtype=torch.bool, device=masks.device)  # + 1: a discarded pixel
    out = flat[:-1].view(len(masks), h, w)
    if len(masks) == 0:
        return out
    x0 = torch.clamp(boxes[:, 0].floor() - 1, min=0).to(torch.int64)
    y0 = torch.clamp(boxes[:, 1].floor() - 1, min=0).to(torch.int64)
    x1 = torch.clamp(boxes[:, 2].ceil() + 1, max=w).to(torch.int64)
    y1 = torch.clamp(boxes[:, 3].ceil() + 1, max=h).to(torch.int64)
    heights, widths = (y1 - y0).clamp(min=0), (x1 - x0).clamp(min=0)
    for batch in _region_batches(heights.tolist(), widths.tolist()):
        index = torch.tensor(batch, dtype=torch.int64, device=masks.device)
        _paste_batch(flat, (h, w), masks[index], boxes[index], index, y0[index], x0[index], heights[index],
                     widths[index], threshold)
    return out


@dataclass
class _RegionGroup:
    """Regions pasted together: their largest height and width, their summed pixels, their indices."""

    rows: int
    cols: int
    pixels: int
    members: list[int]


def _region_batches(heights: list[int], widths: list[int], waste: float = 2.0) -> list[list[int]]:
    """Non-empty regions grouped (largest first) so that each group's padded size, count x max height x max
    width, stays within `waste` times its pixels (plus 4096 per region)."""
    order = sorted((i for i in range(len(heights)) if heights[i] > 0 and widths[i] > 0),
                   key=lambda i: heights[i] * widths[i], reverse=True)
    groups: list[_RegionGroup] = []
    for i in order:
        if groups:
            group, count = groups[-1], len(groups[-1].members) + 1
            rows, cols = max(heights[i], group.rows), max(widths[i], group.cols)
            pixels = group.pixels + heights[i] * widths[i]
            if count * rows * cols <= waste * pixels + 4096 * count:
                group.rows, group.cols, group.pixels = rows, cols, pixels
                group.members.append(i)
                continue
        groups.append(_RegionGroup(heights[i], widths[i], heights[i] * widths[i], [i]))
    return [group.members for group in groups]


def _paste_batch(flat: torch.Tensor, image_size: tuple[int, int], masks: torch.Tensor, boxes: torch.Tensor,
                 index: torch.Tensor, y0: torch.Tensor, x0: torch.Tensor, heights: torch.Tensor, widths: torch.Tensor,
                 threshold: float) -> None:
    """Resample `masks` (B, M, M) at the pixel centres of their regions (B rows of y0, x0, heights, widths)
    and write the thresholded pixels into `flat` ((N * H * W + 1,) bool: masks `index` of N, then one pixel
    that takes the padding's writes)."""
    rows, cols = int(heights.max()), int(widths.max())
    dev = masks.device
    ys = torch.arange(rows, device=dev)[None, :] + y0[:, None]  # (B, rows) pixel rows, past the region: unused
    xs = torch.arange(cols, device=dev)[None, :] + x0[:, None]
    gy = (ys.to(torch.float32) + 0.5 - boxes[:, 1:2]) / (boxes[:, 3:4] - boxes[:, 1:2]) * 2 - 1
    gx = (xs.to(torch.float32) + 0.5 - boxes[:, 0:1]) / (boxes[:, 2:3] - boxes[:, 0:1]) * 2 - 1
    b = len(masks)
    grid = torch.stack([gx[:, None, :].expand(b, rows, cols), gy[:, :, None].expand(b, rows, cols)], dim=3)
    sampled = F.grid_sample(masks[:, None].float(), grid, align_corners=False)[:, 0] >= threshold
    inside = ((torch.arange(rows, device=dev)[None, :, None] < heights[:, None, None])
              & (torch.arange(cols, device=dev)[None, None, :] < widths[:, None, None]))
    h, w = image_size
    target = index[:, None, None] * (h * w) + ys[:, :, None] * w + xs[:, None, :]
    flat[torch.where(inside, target, len(flat) - 1)] = sampled


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
