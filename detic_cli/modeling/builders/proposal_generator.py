"""Config -> proposal generator: CenterNet (MODEL.CENTERNET.*) or the RPN (MODEL.RPN.*, MODEL.ANCHOR_GENERATOR.*)."""

from __future__ import annotations

from collections.abc import Mapping

from detic_cli.config import CfgNode
from detic_cli.errors import DeticError
from detic_cli.layers.box_transform import Box2BoxTransform
from detic_cli.modeling.backbone.base import Backbone
from detic_cli.modeling.proposal.centernet import CenterNetProposals
from detic_cli.modeling.proposal.centernet_head import CenterNetHead
from detic_cli.modeling.proposal.centernet_loss import CenterNetLoss
from detic_cli.modeling.proposal.rpn import RPN
from detic_cli.modeling.proposal.rpn_loss import RPNLoss


def feature_shapes(backbone: Backbone) -> dict[str, tuple[int, int]]:
    """{name: (channels, stride)} of a backbone's outputs, the `input_shapes` build_rpn takes."""
    return {f: (backbone.out_channels[f], backbone.out_strides[f]) for f in backbone.out_features}


def _single_channel_count(key: str, features: list[str], input_shapes: Mapping[str, tuple[int, int]]) -> int:
    missing = [f for f in features if f not in input_shapes]
    if missing:
        raise DeticError(f"{key} {missing}: not among the backbone outputs {list(input_shapes)}")
    channels = {input_shapes[f][0] for f in features}
    if len(channels) != 1:
        raise DeticError(f"{key} {features}: every level needs the same channel count, got {sorted(channels)}")
    return channels.pop()


def build_centernet(cfg: CfgNode, backbone: Backbone) -> CenterNetProposals:
    """Detic's CenterNet proposal network (class-agnostic heatmap only)."""
    c = cfg.MODEL.CENTERNET
    channels = _single_channel_count("MODEL.CENTERNET.IN_FEATURES", list(c.IN_FEATURES), feature_shapes(backbone))
    head = CenterNetHead(in_channels=channels, num_levels=len(c.IN_FEATURES), num_classes=c.NUM_CLASSES,
                         num_cls_convs=c.NUM_CLS_CONVS, num_box_convs=c.NUM_BOX_CONVS,
                         num_share_convs=c.NUM_SHARE_CONVS, norm=c.NORM, with_agn_hm=c.WITH_AGN_HM,
                         only_proposal=c.ONLY_PROPOSAL, prior_prob=c.PRIOR_PROB)
    losses = CenterNetLoss(strides=list(c.FPN_STRIDES), sizes_of_interest=[list(r) for r in c.SOI],
                           hm_min_overlap=c.HM_MIN_OVERLAP, min_radius=c.MIN_RADIUS, hm_focal_alpha=c.HM_FOCAL_ALPHA,
                           hm_focal_beta=c.HM_FOCAL_BETA, loss_gamma=c.LOSS_GAMMA, sigmoid_clamp=c.SIGMOID_CLAMP,
                           ignore_high_fp=c.IGNORE_HIGH_FP, pos_weight=c.POS_WEIGHT, neg_weight=c.NEG_WEIGHT,
                           reg_weight=c.REG_WEIGHT, not_norm_reg=c.NOT_NORM_REG, loc_loss_type=c.LOC_LOSS_TYPE)
    return CenterNetProposals(head=head, in_features=list(c.IN_FEATURES), strides=list(c.FPN_STRIDES),
                              score_thresh=c.INFERENCE_TH, pre_nms_topk=(c.PRE_NMS_TOPK_TRAIN, c.PRE_NMS_TOPK_TEST),
                              post_nms_topk=(c.POST_NMS_TOPK_TRAIN, c.POST_NMS_TOPK_TEST),
                              nms_thresh=(c.NMS_TH_TRAIN, c.NMS_TH_TEST), losses=losses)


def build_rpn_loss(cfg: CfgNode) -> RPNLoss:
    """Anchor matching, sampling and loss settings from MODEL.RPN.*."""
    rpn = cfg.MODEL.RPN
    return RPNLoss(box2box_transform=Box2BoxTransform(weights=tuple(rpn.BBOX_REG_WEIGHTS)),
                   iou_thresholds=rpn.IOU_THRESHOLDS, iou_labels=rpn.IOU_LABELS,
                   batch_size_per_image=rpn.BATCH_SIZE_PER_IMAGE, positive_fraction=rpn.POSITIVE_FRACTION,
                   box_reg_loss_type=rpn.BBOX_REG_LOSS_TYPE, smooth_l1_beta=rpn.SMOOTH_L1_BETA,
                   loss_weight=rpn.LOSS_WEIGHT, box_reg_loss_weight=rpn.BBOX_REG_LOSS_WEIGHT,
                   boundary_thresh=rpn.BOUNDARY_THRESH)


def build_rpn(cfg: CfgNode, input_shapes: Mapping[str, tuple[int, int]]) -> RPN:
    """RPN from MODEL.RPN.*, ANCHOR_GENERATOR.* and PROPOSAL_GENERATOR.MIN_SIZE.

    `input_shapes` maps feature names to (channels, stride); MODEL.RPN.IN_FEATURES picks the levels.
    """
    rpn, anchors = cfg.MODEL.RPN, cfg.MODEL.ANCHOR_GENERATOR
    channels = _single_channel_count("MODEL.RPN.IN_FEATURES", list(rpn.IN_FEATURES), input_shapes)
    return RPN(in_features=list(rpn.IN_FEATURES), in_channels=channels,
               strides=[input_shapes[f][1] for f in rpn.IN_FEATURES], anchor_sizes=anchors.SIZES,
               anchor_aspect_ratios=anchors.ASPECT_RATIOS, anchor_offset=anchors.OFFSET,
               box_reg_weights=tuple(rpn.BBOX_REG_WEIGHTS),
               pre_nms_topk=(rpn.PRE_NMS_TOPK_TRAIN, rpn.PRE_NMS_TOPK_TEST),
               post_nms_topk=(rpn.POST_NMS_TOPK_TRAIN, rpn.POST_NMS_TOPK_TEST), nms_thresh=rpn.NMS_THRESH,
               min_box_size=cfg.MODEL.PROPOSAL_GENERATOR.MIN_SIZE, conv_dims=list(rpn.CONV_DIMS),
               loss=build_rpn_loss(cfg))
