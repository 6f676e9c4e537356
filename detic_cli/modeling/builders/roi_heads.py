"""Config -> ROI heads: Detic's cascade heads (FPN models) or the Res5 heads of the C4 models (MODEL.ROI_*)."""

from __future__ import annotations

from torch import Tensor

from detic_cli.config import CfgNode
from detic_cli.layers.box_transform import Box2BoxTransform
from detic_cli.layers.roi_pooler import ROIPooler
from detic_cli.modeling.backbone.base import Backbone
from detic_cli.modeling.builders.resnet import build_res5_stage
from detic_cli.modeling.builders.weak_supervision import build_weak_supervision
from detic_cli.modeling.roi_heads.box_head import FastRCNNConvFCHead
from detic_cli.modeling.roi_heads.box_losses import FastRCNNLosses
from detic_cli.modeling.roi_heads.cascade import DeticCascadeROIHeads
from detic_cli.modeling.roi_heads.fast_rcnn import DeticBoxPredictor
from detic_cli.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead
from detic_cli.modeling.roi_heads.res5 import CustomRes5ROIHeads
from detic_cli.modeling.roi_heads.sampling import ProposalSampler


def build_pooler(head: CfgNode, backbone: Backbone, in_features: list[str]) -> ROIPooler:
    """ROI pooler of one head config (ROI_BOX_HEAD or ROI_MASK_HEAD) over the backbone levels `in_features`."""
    return ROIPooler(output_size=head.POOLER_RESOLUTION, scales=[1.0 / backbone.out_strides[f] for f in in_features],
                     sampling_ratio=head.POOLER_SAMPLING_RATIO, aligned=head.POOLER_TYPE == "ROIAlignV2")


def build_box_predictor(cfg: CfgNode, input_size: int, reg_weights: list[float]) -> DeticBoxPredictor:
    """One stage's zero-shot classifier and class-agnostic box regressor (MODEL.ROI_BOX_HEAD.*)."""
    box = cfg.MODEL.ROI_BOX_HEAD
    return DeticBoxPredictor(input_size=input_size, num_classes=cfg.MODEL.ROI_HEADS.NUM_CLASSES,
                             box2box_transform=Box2BoxTransform(tuple(reg_weights)),
                             use_sigmoid_ce=box.USE_SIGMOID_CE, mlp_bbox_pred=True,
                             zs_weight_dim=box.ZEROSHOT_WEIGHT_DIM, use_bias=box.USE_BIAS,
                             norm_weight=box.NORM_WEIGHT, norm_temperature=box.NORM_TEMP)


def build_proposal_sampler(cfg: CfgNode) -> ProposalSampler:
    """Stage-0 / Res5 proposal labelling and sampling from MODEL.ROI_HEADS.*."""
    heads = cfg.MODEL.ROI_HEADS
    return ProposalSampler(iou_thresholds=list(heads.IOU_THRESHOLDS), iou_labels=list(heads.IOU_LABELS),
                           batch_size_per_image=heads.BATCH_SIZE_PER_IMAGE, positive_fraction=heads.POSITIVE_FRACTION,
                           append_gt=heads.PROPOSAL_APPEND_GT)


def build_box_losses(cfg: CfgNode, class_counts: Tensor | None = None) -> FastRCNNLosses:
    """Box-predictor losses from MODEL.ROI_BOX_HEAD.*; `class_counts` (C,) training images per class, for
    USE_FED_LOSS and IGNORE_ZERO_CATS (only a training loss needs them)."""
    box = cfg.MODEL.ROI_BOX_HEAD
    return FastRCNNLosses(use_sigmoid_ce=box.USE_SIGMOID_CE, use_fed_loss=box.USE_FED_LOSS,
                          fed_loss_num_cat=box.FED_LOSS_NUM_CAT, ignore_zero_cats=box.IGNORE_ZERO_CATS,
                          class_counts=class_counts,
                          fed_loss_freq_weight=box.FED_LOSS_FREQ_WEIGHT, box_reg_loss_type=box.BBOX_REG_LOSS_TYPE,
                          smooth_l1_beta=box.SMOOTH_L1_BETA)


def _mask_parts(cfg: CfgNode, backbone: Backbone, channels: int) -> dict:
    if not cfg.MODEL.MASK_ON:
        return {}
    heads, m = cfg.MODEL.ROI_HEADS, cfg.MODEL.ROI_MASK_HEAD
    head = MaskRCNNConvUpsampleHead(in_channels=channels, num_conv=m.NUM_CONV, conv_dim=m.CONV_DIM,
                                    num_mask_classes=1 if m.CLS_AGNOSTIC_MASK else heads.NUM_CLASSES)
    return dict(mask_in_features=list(heads.IN_FEATURES), mask_pooler=build_pooler(m, backbone, heads.IN_FEATURES),
                mask_head=head)


def build_cascade_roi_heads(cfg: CfgNode, backbone: Backbone,
                            class_counts: Tensor | None = None) -> DeticCascadeROIHeads:
    """DeticCascadeROIHeads: one box head and predictor per MODEL.ROI_BOX_CASCADE_HEAD stage, optional mask head;
    `class_counts` as build_box_losses'."""
    heads, box, cascade = cfg.MODEL.ROI_HEADS, cfg.MODEL.ROI_BOX_HEAD, cfg.MODEL.ROI_BOX_CASCADE_HEAD
    channels = backbone.out_channels[heads.IN_FEATURES[0]]
    box_heads, predictors = [], []
    for weights in cascade.BBOX_REG_WEIGHTS:
        head = FastRCNNConvFCHead(in_channels=channels, resolution=box.POOLER_RESOLUTION, num_conv=box.NUM_CONV,
                                  conv_dim=box.CONV_DIM, num_fc=box.NUM_FC, fc_dim=box.FC_DIM)
        box_heads.append(head)
        predictors.append(build_box_predictor(cfg, head.output_size, weights))
    return DeticCascadeROIHeads(in_features=list(heads.IN_FEATURES),
                                box_pooler=build_pooler(box, backbone, heads.IN_FEATURES), box_heads=box_heads,
                                box_predictors=predictors, score_thresh=heads.SCORE_THRESH_TEST,
                                nms_thresh=heads.NMS_THRESH_TEST, detections_per_image=cfg.TEST.DETECTIONS_PER_IMAGE,
                                mult_proposal_score=box.MULT_PROPOSAL_SCORE,
                                one_class_per_proposal=heads.ONE_CLASS_PER_PROPOSAL,
                                sampler=build_proposal_sampler(cfg), stage_ious=list(cascade.IOUS),
                                losses=build_box_losses(cfg, class_counts), mask_weight=heads.MASK_WEIGHT,
                                weak=build_weak_supervision(cfg), **_mask_parts(cfg, backbone, channels))


def build_res5_roi_heads(cfg: CfgNode, backbone: Backbone, class_counts: Tensor | None = None) -> CustomRes5ROIHeads:
    """CustomRes5ROIHeads of the C4 models: res5 on pooled res4 regions, then one box predictor; `class_counts` as
    build_box_losses'."""
    heads, box = cfg.MODEL.ROI_HEADS, cfg.MODEL.ROI_BOX_HEAD
    predictor = build_box_predictor(cfg, cfg.MODEL.RESNETS.RES2_OUT_CHANNELS * 8, list(box.BBOX_REG_WEIGHTS))
    return CustomRes5ROIHeads(in_features=list(heads.IN_FEATURES),
                              pooler=build_pooler(box, backbone, heads.IN_FEATURES), res5=build_res5_stage(cfg),
                              box_predictor=predictor, score_thresh=heads.SCORE_THRESH_TEST,
                              nms_thresh=heads.NMS_THRESH_TEST, detections_per_image=cfg.TEST.DETECTIONS_PER_IMAGE,
                              mult_proposal_score=box.MULT_PROPOSAL_SCORE, sampler=build_proposal_sampler(cfg),
                              losses=build_box_losses(cfg, class_counts), weak=build_weak_supervision(cfg))
