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
    out = torch.zeros((len(masks), h, w), dtype=torch.bool, device=masks.device)
    if len(masks) == 0:
        return out
    x0 = torch.clamp(boxes[:, 0].floor() - 1, min=0).to(torch.int64)
    y0 = torch.clamp(boxes[:, 1].floor() - 1, min=0).to(torch.int64)
    x1 = torch.clamp(boxes[:, 2].ceil() + 1, max=w).to(torch.int64)
    y1 = torch.clamp(boxes[:, 3].ceil() + 1, max=h).to(torch.int64)
    regions = torch.stack([y0, x0, (y1 - y0).clamp(min=0), (x1 - x0).clamp(min=0)], dim=1).tolist()
    for batch in _region_batches([r[2] for r in regions], [r[3] for r in regions]):
        index = torch.tensor(batch, dtype=torch.int64, device=masks.device)
        sampled = _sample_regions(masks[index], boxes[index], [regions[i] for i in batch]) >= threshold
        for j, i in enumerate(batch):  # one slice copy per mask: its region's rows and columns
            top, left, rows, cols = regions[i]
            out[i, top:top + rows, left:left + cols] = sampled[j, :rows, :cols]
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


def _sample_regions(masks: torch.Tensor, boxes: torch.Tensor, regions: list[list[int]]) -> torch.Tensor:
    """(B, M, M) masks resampled at the pixel centres of their B regions ([top, left, rows, cols] in the image)
    -> (B, max rows, max cols) probabilities; past a region's own rows and columns: unused values."""
    rows, cols = max(r[2] for r in regions), max(r[3] for r in regions)
    dev = masks.device
    y0 = torch.tensor([r[0] for r in regions], device=dev)
    x0 = torch.tensor([r[1] for r in regions], device=dev)
    ys = torch.arange(rows, device=dev)[None, :] + y0[:, None]  # (B, rows) pixel rows
    xs = torch.arange(cols, device=dev)[None, :] + x0[:, None]
    gy = (ys.to(torch.float32) + 0.5 - boxes[:, 1:2]) / (boxes[:, 3:4] - boxes[:, 1:2]) * 2 - 1
    gx = (xs.to(torch.float32) + 0.5 - boxes[:, 0:1]) / (boxes[:, 2:3] - boxes[:, 0:1]) * 2 - 1
    grid = torch.empty((len(regions), rows, cols, 2), dtype=torch.float32, device=dev)
    grid[..., 0] = gx[:, None, :]
    grid[..., 1] = gy[:, :, None]
    return F.grid_sample(masks[:, None].float(), grid, align_corners=False)[:, 0]


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
