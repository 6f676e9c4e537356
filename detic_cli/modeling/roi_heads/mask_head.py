"""MaskRCNNConvUpsampleHead: 3x3 convs, a 2x deconvolution and a 1x1 predictor per (agnostic) class."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from detic_cli.layers.fast_conv import (
    conv3x3,
    deconv2x2_relu_pointwise,
    fast_path_allowed,
    nnpack_ready,
    winograd_eligible,
)
from detic_cli.structures import Instances
from detic_cli.structures.masks import PolygonMasks


class MaskRCNNConvUpsampleHead(nn.Module):
    """(N, C, S, S) pooled features -> (N, num_mask_classes, 2S, 2S) mask logits."""

    def __init__(self, *, in_channels: int, num_conv: int = 4, conv_dim: int = 256,
                 num_mask_classes: int = 1) -> None:
        super().__init__()
        self.convs = []
        channels = in_channels
        for k in range(num_conv):
            conv = nn.Conv2d(channels, conv_dim, kernel_size=3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            self.add_module(f"mask_fcn{k + 1}", conv)
            self.convs.append(conv)
            channels = conv_dim
        self.deconv = nn.ConvTranspose2d(channels, conv_dim, kernel_size=2, stride=2)
        nn.init.kaiming_normal_(self.deconv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.deconv.bias)
        self.predictor = nn.Conv2d(conv_dim, num_mask_classes, kernel_size=1)
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.zeros_(self.predictor.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fast_path_allowed(x) and nnpack_ready() and self._fast_shapes():
            return self._forward_cpu_inference(x)
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.predictor(F.relu(self.deconv(x)))

    def _fast_shapes(self) -> bool:
        return all(winograd_eligible(c) for c in self.convs) and tuple(self.deconv.kernel_size) == (2, 2) \
            and tuple(self.deconv.stride) == (2, 2) and tuple(self.deconv.padding) == (0, 0)

    def _forward_cpu_inference(self, x: torch.Tensor) -> torch.Tensor:
        """The same function on the CPU without gradient, ~2x faster: Winograd 3x3 convolutions, the
        deconvolution and the 1x1 predictor as GEMMs over chunks of ROIs (float32 rounding differs by ~1e-7 of
        the logits)."""
        for conv in self.convs:
            x = conv3x3(conv, x).relu_()
        return deconv2x2_relu_pointwise(self.deconv, self.predictor, x)


def mask_rcnn_inference(mask_logits: torch.Tensor, instances: list[Instances]) -> None:
    """Set `pred_masks` (R_i, 1, M, M) probabilities in [0, 1] on each image's instances.

    Class-agnostic logits use channel 0; class-specific ones the channel of `pred_classes`.
    """
    if mask_logits.shape[1] == 1:
        probs = mask_logits.sigmoid()
    else:
        classes = torch.cat([i.pred_classes for i in instances])
        probs = mask_logits[torch.arange(len(classes), device=classes.device), classes][:, None].sigmoid()
    for inst, p in zip(instances, probs.split([len(i) for i in instances])):
        inst.pred_masks = p


def mask_targets(gt_masks: torch.Tensor | PolygonMasks, boxes: torch.Tensor, gt_index: torch.Tensor,
                 size: int) -> torch.Tensor:
    """(R, size, size) bool training targets: the mask of ground truth `gt_index[r]` seen through box r.

    gt_masks: PolygonMasks (INPUT.MASK_FORMAT polygon, the original's configs): the polygons rasterized inside
    each box at size x size; or bool (G, H, W) bitmasks (MASK_FORMAT bitmask) in the image frame of the XYXY
    `boxes` (R, 4): each box region resampled with ROIAlign (aligned, adaptive sampling) and thresholded at
    0.5, as detectron2's BitMasks.crop_and_resize.
    """
    if isinstance(gt_masks, PolygonMasks):
        return gt_masks.crop_and_resize(boxes, gt_index, size).to(boxes.device)
    if len(boxes) == 0:
        return torch.zeros((0, size, size), dtype=torch.bool, device=gt_masks.device)
    rois = torch.cat([gt_index.to(gt_masks.device, torch.float32)[:, None],
                      boxes.to(gt_masks.device, torch.float32)], dim=1)
    crops = roi_align(gt_masks[:, None].to(torch.float32), rois, (size, size), 1.0, 0, True)
    return crops.squeeze(1) >= 0.5


def mask_rcnn_loss(mask_logits: torch.Tensor, proposals: list[Instances],
                   gt_masks: list[torch.Tensor | PolygonMasks]) -> torch.Tensor:
    """`loss_mask`: mean per-pixel BCE of (R, K, M, M) logits on the foreground proposals of all images.

    proposals[i] (fields `proposal_boxes`, `gt_classes`, `gt_index`) are image i's foreground proposals,
    in the order of `mask_logits`; gt_masks[i] is its PolygonMasks or bool (G_i, H, W) bitmasks (see
    `mask_targets`). K = 1 (class-agnostic) or the channel of each proposal's gt class. No foreground: 0
    connected to the graph.
    """
    if mask_logits.shape[0] == 0:
        return mask_logits.sum() * 0
    size = mask_logits.shape[2]
    targets = torch.cat([mask_targets(m, p.proposal_boxes.tensor, p.gt_index, size)
                         for p, m in zip(proposals, gt_masks, strict=True)]).to(mask_logits.device)
    if mask_logits.shape[1] == 1:
        logits = mask_logits[:, 0]
    else:
        classes = torch.cat([p.gt_classes for p in proposals])
        logits = mask_logits[torch.arange(len(classes), device=classes.device), classes]
    return F.binary_cross_entropy_with_logits(logits.float(), targets.to(torch.float32), reduction="mean")
