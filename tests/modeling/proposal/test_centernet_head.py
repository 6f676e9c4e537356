"""The CenterNet head keeps the original's convolution kernel at inference (its outputs are scaled by strides)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from detic_cli.layers.fast_conv import use_winograd
from detic_cli.modeling.proposal.centernet_head import CenterNetHead


def test_inference_convolutions_are_the_modules_own():
    torch.manual_seed(0)
    head = CenterNetHead(in_channels=32, num_levels=2, num_classes=1, num_box_convs=2, norm="GN").eval()
    assert use_winograd(head) == 0  # no Winograd: its rounding moved proposal boxes ~3e-4 px (parity)
    features = [torch.randn(1, 32, 40, 40), torch.randn(1, 32, 20, 20)]  # >= 1024 positions: Winograd would pay
    with torch.no_grad():
        _, box_reg, agn_hms = head(features)
        tower = head.bbox_tower(features[0])
        expected = F.relu(head.scales[0](F.conv2d(tower, head.bbox_pred.weight, head.bbox_pred.bias, padding=1)))
    assert torch.equal(box_reg[0], expected)
    assert torch.equal(agn_hms[0], F.conv2d(tower, head.agn_hm.weight, head.agn_hm.bias, padding=1))
