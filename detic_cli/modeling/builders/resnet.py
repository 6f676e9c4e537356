"""Config -> the detectron2-style ResNet (MODEL.RESNETS.*) and the res5 stage of the C4 ROI heads."""

from __future__ import annotations

from torch import nn

from detic_cli.config import CfgNode
from detic_cli.modeling.backbone.resnet import ResNet, make_stage


def build_resnet_backbone(cfg: CfgNode, in_channels: int = 3) -> ResNet:
    """ResNet from MODEL.RESNETS.* and MODEL.BACKBONE.FREEZE_AT (input: (B, in_channels, H, W))."""
    r = cfg.MODEL.RESNETS
    return ResNet(depth=r.DEPTH, out_features=list(r.OUT_FEATURES), in_channels=in_channels,
                  stem_out_channels=r.STEM_OUT_CHANNELS, res2_out_channels=r.RES2_OUT_CHANNELS,
                  num_groups=r.NUM_GROUPS, width_per_group=r.WIDTH_PER_GROUP, stride_in_1x1=r.STRIDE_IN_1X1,
                  norm=r.NORM, res5_dilation=r.RES5_DILATION, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)


def build_res5_stage(cfg: CfgNode) -> nn.Sequential:
    """The res5 stage the C4 ROI heads run on pooled res4 regions (detectron2 Res5ROIHeads layout).

    (R, RES2_OUT_CHANNELS * 4, 14, 14) -> (R, RES2_OUT_CHANNELS * 8, 7, 7) with the default config.
    """
    r = cfg.MODEL.RESNETS
    out_channels = r.RES2_OUT_CHANNELS * 8
    return make_stage(num_blocks=3, in_channels=out_channels // 2, out_channels=out_channels,
                      first_stride=2, bottleneck_channels=r.NUM_GROUPS * r.WIDTH_PER_GROUP * 8,
                      num_groups=r.NUM_GROUPS, norm=r.NORM, stride_in_1x1=r.STRIDE_IN_1X1,
                      dilation=r.RES5_DILATION)
