"""The only reader of cfg.MODEL.*: turns a config into a model."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from detic_cli.config import CfgNode
from detic_cli.errors import DeticError
from detic_cli.layers.box_transform import Box2BoxTransform
from detic_cli.layers.roi_pooler import ROIPooler
from detic_cli.modeling.backbone.base import Backbone
from detic_cli.modeling.backbone.fpn import FPN, LastLevelP6P7
from detic_cli.modeling.backbone.timm_resnet import TimmResNet
from detic_cli.modeling.build_weak import build_dynamic_classes, build_weak_supervision
from detic_cli.modeling.meta_arch import CustomRCNN
from detic_cli.modeling.proposal.centernet import CenterNetProposals
from detic_cli.modeling.proposal.centernet_head import CenterNetHead
from detic_cli.modeling.proposal.centernet_loss import CenterNetLoss
from detic_cli.modeling.roi_heads.box_head import FastRCNNConvFCHead
from detic_cli.modeling.roi_heads.box_losses import FastRCNNLosses
from detic_cli.modeling.roi_heads.cascade import DeticCascadeROIHeads
from detic_cli.modeling.roi_heads.fast_rcnn import DeticBoxPredictor
from detic_cli.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead
from detic_cli.modeling.roi_heads.sampling import ProposalSampler


def build_bottom_up(cfg: CfgNode) -> Backbone:
    name = cfg.MODEL.BACKBONE.NAME
    if name in ("build_p67_timm_fpn_backbone", "build_p35_timm_fpn_backbone", "build_timm_backbone"):
        timm_cfg = cfg.MODEL.TIMM
        if timm_cfg.BASE_NAME.startswith("convnext"):
            from detic_cli.modeling.backbone.convnext import TimmConvNeXt

            return TimmConvNeXt(base_name=timm_cfg.BASE_NAME, out_levels=list(timm_cfg.OUT_LEVELS))
        return TimmResNet(base_name=timm_cfg.BASE_NAME, out_levels=list(timm_cfg.OUT_LEVELS),
                          freeze_at=timm_cfg.FREEZE_AT, norm=timm_cfg.NORM)
    if name == "build_resnet_backbone":
        from detic_cli.modeling.build_resnet import build_resnet_backbone

        return build_resnet_backbone(cfg)
    if name == "build_swintransformer_fpn_backbone":
        from detic_cli.modeling.backbone.swin import build_swin

        return build_swin(cfg.MODEL.SWIN.SIZE, out_indices=tuple(cfg.MODEL.SWIN.OUT_FEATURES),
                          use_checkpoint=cfg.MODEL.SWIN.USE_CHECKPOINT)
    raise DeticError(f"MODEL.BACKBONE.NAME {name!r} is not supported")


def build_backbone(cfg: CfgNode) -> Backbone:
    bottom_up = build_bottom_up(cfg)
    name = cfg.MODEL.BACKBONE.NAME
    if name in ("build_timm_backbone", "build_resnet_backbone"):
        return bottom_up
    top = LastLevelP6P7(cfg.MODEL.FPN.OUT_CHANNELS, cfg.MODEL.FPN.OUT_CHANNELS) if "p67" in name or "swin" in name \
        else None
    return FPN(bottom_up=bottom_up, in_features=list(cfg.MODEL.FPN.IN_FEATURES),
               out_channels=cfg.MODEL.FPN.OUT_CHANNELS, top_block=top, fuse_type=cfg.MODEL.FPN.FUSE_TYPE)


def build_centernet(cfg: CfgNode, backbone: Backbone) -> CenterNetProposals:
    c = cfg.MODEL.CENTERNET
    channels = {backbone.out_channels[f] for f in c.IN_FEATURES}
    if len(channels) != 1:
        raise DeticError(f"MODEL.CENTERNET.IN_FEATURES {c.IN_FEATURES}: every level needs the same channels")
    head = CenterNetHead(in_channels=channels.pop(), num_levels=len(c.IN_FEATURES), num_classes=c.NUM_CLASSES,
                         num_cls_convs=c.NUM_CLS_CONVS, num_box_convs=c.NUM_BOX_CONVS,
                         num_share_convs=c.NUM_SHARE_CONVS, norm=c.NORM, with_agn_hm=c.WITH_AGN_HM,
                         only_proposal=c.ONLY_PROPOSAL, prior_prob=c.PRIOR_PROB)
    if not (c.ONLY_PROPOSAL and c.WITH_AGN_HM):
        raise DeticError("CenterNet is supported as Detic's proposal network (ONLY_PROPOSAL and WITH_AGN_HM)")
    if c.MORE_POS:
        raise DeticError("MODEL.CENTERNET.MORE_POS is not supported (Detic's configs leave it False)")
    if c.LOC_LOSS_TYPE not in ("iou", "linear_iou", "giou"):
        raise DeticError(f"MODEL.CENTERNET.LOC_LOSS_TYPE {c.LOC_LOSS_TYPE!r}: use giou, iou or linear_iou")
    if len(c.SOI) != len(c.FPN_STRIDES):
        raise DeticError(f"MODEL.CENTERNET.SOI needs one [lo, hi] range per level of FPN_STRIDES {c.FPN_STRIDES}")
    losses = CenterNetLoss(strides=list(c.FPN_STRIDES), sizes_of_interest=[list(r) for r in c.SOI],
                           hm_min_overlap=c.HM_MIN_OVERLAP, min_radius=c.MIN_RADIUS, hm_focal_alpha=c.HM_FOCAL_ALPHA,
                           hm_focal_beta=c.HM_FOCAL_BETA, loss_gamma=c.LOSS_GAMMA, sigmoid_clamp=c.SIGMOID_CLAMP,
                           ignore_high_fp=c.IGNORE_HIGH_FP, pos_weight=c.POS_WEIGHT, neg_weight=c.NEG_WEIGHT,
                           reg_weight=c.REG_WEIGHT, not_norm_reg=c.NOT_NORM_REG, loc_loss_type=c.LOC_LOSS_TYPE)
    return CenterNetProposals(head=head, in_features=list(c.IN_FEATURES), strides=list(c.FPN_STRIDES),
                              score_thresh=c.INFERENCE_TH, pre_nms_topk=(c.PRE_NMS_TOPK_TRAIN, c.PRE_NMS_TOPK_TEST),
                              post_nms_topk=(c.POST_NMS_TOPK_TRAIN, c.POST_NMS_TOPK_TEST),
                              nms_thresh=(c.NMS_TH_TRAIN, c.NMS_TH_TEST), losses=losses)


def _pooler(cfg_head: CfgNode, backbone: Backbone, in_features: list[str]) -> ROIPooler:
    if cfg_head.POOLER_TYPE != "ROIAlignV2":
        raise DeticError(f"POOLER_TYPE {cfg_head.POOLER_TYPE!r} is not supported (use ROIAlignV2)")
    return ROIPooler(output_size=cfg_head.POOLER_RESOLUTION,
                     scales=[1.0 / backbone.out_strides[f] for f in in_features],
                     sampling_ratio=cfg_head.POOLER_SAMPLING_RATIO, aligned=True)


def build_box_predictor(cfg: CfgNode, input_size: int, reg_weights: list[float], mlp: bool) -> DeticBoxPredictor:
    box = cfg.MODEL.ROI_BOX_HEAD
    if not box.USE_ZEROSHOT_CLS and cfg.MODEL.META_ARCHITECTURE == "CustomRCNN" and not box.CLS_AGNOSTIC_BBOX_REG:
        raise DeticError("only class-agnostic box regression with the zero-shot classifier is supported")
    return DeticBoxPredictor(input_size=input_size, num_classes=cfg.MODEL.ROI_HEADS.NUM_CLASSES,
                             box2box_transform=Box2BoxTransform(tuple(reg_weights)),
                             use_sigmoid_ce=box.USE_SIGMOID_CE, mlp_bbox_pred=mlp,
                             zs_weight_dim=box.ZEROSHOT_WEIGHT_DIM, use_bias=box.USE_BIAS,
                             norm_weight=box.NORM_WEIGHT, norm_temperature=box.NORM_TEMP)


def _dataset_path(path: str) -> Path:
    """A config path; "datasets/..." is relative to $DETIC_DATASETS (default ./datasets)."""
    if path.startswith("datasets/"):
        return Path(os.environ.get("DETIC_DATASETS") or "datasets") / path[len("datasets/"):]
    return Path(path)


def build_proposal_sampler(cfg: CfgNode) -> ProposalSampler:
    """Stage-0 / Res5 proposal labelling and sampling from MODEL.ROI_HEADS.*."""
    heads = cfg.MODEL.ROI_HEADS
    return ProposalSampler(iou_thresholds=list(heads.IOU_THRESHOLDS), iou_labels=list(heads.IOU_LABELS),
                           batch_size_per_image=heads.BATCH_SIZE_PER_IMAGE, positive_fraction=heads.POSITIVE_FRACTION,
                           append_gt=heads.PROPOSAL_APPEND_GT)


def build_box_losses(cfg: CfgNode) -> FastRCNNLosses:
    """Box-predictor losses from MODEL.ROI_BOX_HEAD.*; the frequency file is only read when training needs it."""
    box = cfg.MODEL.ROI_BOX_HEAD
    return FastRCNNLosses(use_sigmoid_ce=box.USE_SIGMOID_CE, use_fed_loss=box.USE_FED_LOSS,
                          fed_loss_num_cat=box.FED_LOSS_NUM_CAT, ignore_zero_cats=box.IGNORE_ZERO_CATS,
                          cat_freq_path=_dataset_path(box.CAT_FREQ_PATH) if box.CAT_FREQ_PATH else None,
                          fed_loss_freq_weight=box.FED_LOSS_FREQ_WEIGHT, box_reg_loss_type=box.BBOX_REG_LOSS_TYPE,
                          smooth_l1_beta=box.SMOOTH_L1_BETA)


def build_cascade_heads(cfg: CfgNode, backbone: Backbone) -> DeticCascadeROIHeads:
    heads, box = cfg.MODEL.ROI_HEADS, cfg.MODEL.ROI_BOX_HEAD
    channels = backbone.out_channels[heads.IN_FEATURES[0]]
    cascade = cfg.MODEL.ROI_BOX_CASCADE_HEAD
    if len(cascade.IOUS) != len(cascade.BBOX_REG_WEIGHTS):
        raise DeticError(f"MODEL.ROI_BOX_CASCADE_HEAD: {len(cascade.IOUS)} IOUS for "
                         f"{len(cascade.BBOX_REG_WEIGHTS)} BBOX_REG_WEIGHTS (one per stage)")
    box_heads, predictors = [], []
    for weights in cfg.MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS:
        head = FastRCNNConvFCHead(in_channels=channels, resolution=box.POOLER_RESOLUTION, num_conv=box.NUM_CONV,
                                  conv_dim=box.CONV_DIM, num_fc=box.NUM_FC, fc_dim=box.FC_DIM)
        box_heads.append(head)
        predictors.append(build_box_predictor(cfg, head.output_size, weights, mlp=True))
    mask = {}
    if cfg.MODEL.MASK_ON:
        m = cfg.MODEL.ROI_MASK_HEAD
        mask = dict(mask_in_features=list(heads.IN_FEATURES), mask_pooler=_pooler(m, backbone, heads.IN_FEATURES),
                    mask_head=MaskRCNNConvUpsampleHead(in_channels=channels, num_conv=m.NUM_CONV,
                                                       conv_dim=m.CONV_DIM,
                                                       num_mask_classes=1 if m.CLS_AGNOSTIC_MASK
                                                       else heads.NUM_CLASSES))
    return DeticCascadeROIHeads(in_features=list(heads.IN_FEATURES),
                                box_pooler=_pooler(box, backbone, heads.IN_FEATURES), box_heads=box_heads,
                                box_predictors=predictors, score_thresh=heads.SCORE_THRESH_TEST,
                                nms_thresh=heads.NMS_THRESH_TEST, detections_per_image=cfg.TEST.DETECTIONS_PER_IMAGE,
                                mult_proposal_score=box.MULT_PROPOSAL_SCORE,
                                one_class_per_proposal=heads.ONE_CLASS_PER_PROPOSAL,
                                sampler=build_proposal_sampler(cfg), stage_ious=list(cascade.IOUS),
                                losses=build_box_losses(cfg), mask_weight=heads.MASK_WEIGHT,
                                weak=build_weak_supervision(cfg), **mask)


def build_model(cfg: CfgNode) -> nn.Module:
    """The detector of `cfg.MODEL.META_ARCHITECTURE` with random weights, in eval mode."""
    arch = cfg.MODEL.META_ARCHITECTURE
    if arch == "DeformableDetr":
        from detic_cli.modeling.detr.build import build_deformable_detr

        return build_deformable_detr(cfg)
    if arch != "CustomRCNN":
        raise DeticError(f"MODEL.META_ARCHITECTURE {arch!r} is not supported (CustomRCNN or DeformableDetr)")
    backbone = build_backbone(cfg)
    if cfg.MODEL.PROPOSAL_GENERATOR.NAME != "CenterNet" or cfg.MODEL.ROI_HEADS.NAME != "DeticCascadeROIHeads":
        from detic_cli.modeling.build_c4 import build_c4_parts

        proposal_generator, roi_heads = build_c4_parts(cfg, backbone)
    else:
        proposal_generator, roi_heads = build_centernet(cfg, backbone), build_cascade_heads(cfg, backbone)
    text_encoder = None
    if cfg.MODEL.WITH_CAPTION:  # caption models carry CLIP's text tower (`text_encoder.*`), frozen
        from detic_cli.modeling.text.text_encoder import TextEncoder

        text_encoder = TextEncoder()
    model = CustomRCNN(backbone=backbone, proposal_generator=proposal_generator, roi_heads=roi_heads,
                       pixel_mean=list(cfg.MODEL.PIXEL_MEAN), pixel_std=list(cfg.MODEL.PIXEL_STD),
                       input_format=cfg.INPUT.FORMAT, text_encoder=text_encoder,
                       dataset_loss_weight=list(cfg.MODEL.DATASET_LOSS_WEIGHT),
                       sync_caption_batch=bool(cfg.MODEL.SYNC_CAPTION_BATCH), cap_batch_ratio=cfg.MODEL.CAP_BATCH_RATIO,
                       dynamic_classes=build_dynamic_classes(cfg))
    return model.eval()
