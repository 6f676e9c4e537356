"""Config -> constructor arguments for the detectron2-style ResNet, its res5 head stage and the RPN.

The only place these modules read `cfg.MODEL.*`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from detic_cli.layers.box_transform import Box2BoxTransform
from detic_cli.modeling.backbone.resnet import ResNet, make_stage
from detic_cli.modeling.proposal.rpn import RPN
from detic_cli.modeling.proposal.rpn_loss import RPNLoss

__all__ = ["build_res5_stage", "build_resnet_backbone", "build_rpn", "build_rpn_loss", "feature_shapes"]


def build_resnet_backbone(cfg: Any, in_channels: int = 3) -> ResNet:
    """ResNet from cfg.MODEL.RESNETS.* and cfg.MODEL.BACKBONE.FREEZE_AT (input: (B, in_channels, H, W))."""
    r = cfg.MODEL.RESNETS
    if any(r.DEFORM_ON_PER_STAGE):
        raise NotImplementedError("MODEL.RESNETS.DEFORM_ON_PER_STAGE (deformable convs) is not supported")
    return ResNet(depth=r.DEPTH, out_features=list(r.OUT_FEATURES), in_channels=in_channels,
                  stem_out_channels=r.STEM_OUT_CHANNELS, res2_out_channels=r.RES2_OUT_CHANNELS,
                  num_groups=r.NUM_GROUPS, width_per_group=r.WIDTH_PER_GROUP, stride_in_1x1=r.STRIDE_IN_1X1,
                  norm=r.NORM, res5_dilation=r.RES5_DILATION, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)


def build_res5_stage(cfg: Any) -> nn.Sequential:
    """The res5 stage the C4 ROI heads run on pooled res4 regions (detectron2 Res5ROIHeads layout).

    (R, RES2_OUT_CHANNELS * 4, 14, 14) -> (R, RES2_OUT_CHANNELS * 8, 7, 7) with the default config.
    """
    r = cfg.MODEL.RESNETS
    if r.DEFORM_ON_PER_STAGE[-1]:
        raise NotImplementedError("deformable res5 is not supported")
    out_channels = r.RES2_OUT_CHANNELS * 8
    dilation = r.RES5_DILATION
    return make_stage(num_blocks=3, in_channels=out_channels // 2, out_channels=out_channels,
                      first_stride=2, bottleneck_channels=r.NUM_GROUPS * r.WIDTH_PER_GROUP * 8,
                      num_groups=r.NUM_GROUPS, norm=r.NORM, stride_in_1x1=r.STRIDE_IN_1X1, dilation=dilation)


def feature_shapes(backbone: Any) -> dict[str, tuple[int, int]]:
    """{name: (channels, stride)} of a Backbone's outputs, the `input_shapes` build_rpn takes."""
    return {f: (backbone.out_channels[f], backbone.out_strides[f]) for f in backbone.out_features}


def build_rpn_loss(cfg: Any) -> RPNLoss:
    """Anchor matching, sampling and loss settings from cfg.MODEL.RPN.*."""
    rpn = cfg.MODEL.RPN
    return RPNLoss(box2box_transform=Box2BoxTransform(weights=tuple(rpn.BBOX_REG_WEIGHTS)),
                   iou_thresholds=rpn.IOU_THRESHOLDS, iou_labels=rpn.IOU_LABELS,
                   batch_size_per_image=rpn.BATCH_SIZE_PER_IMAGE, positive_fraction=rpn.POSITIVE_FRACTION,
                   box_reg_loss_type=rpn.BBOX_REG_LOSS_TYPE, smooth_l1_beta=rpn.SMOOTH_L1_BETA,
                   loss_weight=rpn.LOSS_WEIGHT, box_reg_loss_weight=rpn.BBOX_REG_LOSS_WEIGHT,
                   boundary_thresh=rpn.BOUNDARY_THRESH)


def build_rpn(cfg: Any, input_shapes: Mapping[str, tuple[int, int]]) -> RPN:
    """RPN from cfg.MODEL.RPN.*, ANCHOR_GENERATOR.* and PROPOSAL_GENERATOR.MIN_SIZE.

    `input_shapes` maps feature names to (channels, stride); RPN.IN_FEATURES picks the levels.
    """
    rpn = cfg.MODEL.RPN
    if rpn.HEAD_NAME != "StandardRPNHead":
        raise NotImplementedError(f"MODEL.RPN.HEAD_NAME {rpn.HEAD_NAME!r} is not supported")
    if cfg.MODEL.ANCHOR_GENERATOR.NAME != "DefaultAnchorGenerator":
        raise NotImplementedError(f"anchor generator {cfg.MODEL.ANCHOR_GENERATOR.NAME!r} is not supported")
    missing = [f for f in rpn.IN_FEATURES if f not in input_shapes]
    if missing:
        raise ValueError(f"MODEL.RPN.IN_FEATURES {missing} not among the backbone outputs {list(input_shapes)}")
    channels = {input_shapes[f][0] for f in rpn.IN_FEATURES}
    if len(channels) != 1:
        raise ValueError(f"RPN input features must share one channel count, got {sorted(channels)}")
    return RPN(in_features=list(rpn.IN_FEATURES), in_channels=channels.pop(),
               strides=[input_shapes[f][1] for f in rpn.IN_FEATURES],
               anchor_sizes=cfg.MODEL.ANCHOR_GENERATOR.SIZES,
               anchor_aspect_ratios=cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS,
               anchor_offset=cfg.MODEL.ANCHOR_GENERATOR.OFFSET, box_reg_weights=tuple(rpn.BBOX_REG_WEIGHTS),
               pre_nms_topk=(rpn.PRE_NMS_TOPK_TRAIN, rpn.PRE_NMS_TOPK_TEST),
               post_nms_topk=(rpn.POST_NMS_TOPK_TRAIN, rpn.POST_NMS_TOPK_TEST), nms_thresh=rpn.NMS_THRESH,
               min_box_size=cfg.MODEL.PROPOSAL_GENERATOR.MIN_SIZE, conv_dims=list(rpn.CONV_DIMS),
               loss=build_rpn_loss(cfg))
