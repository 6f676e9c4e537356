"""The only reader of cfg.MODEL.*: turns a config into a model."""

from __future__ import annotations

from torch import nn

from detic_cli.config import CfgNode
from detic_cli.errors import DeticError
from detic_cli.layers.box_transform import Box2BoxTransform
from detic_cli.layers.roi_pooler import ROIPooler
from detic_cli.modeling.backbone.base import Backbone
from detic_cli.modeling.backbone.fpn import FPN, LastLevelP6P7
from detic_cli.modeling.backbone.timm_resnet import TimmResNet
from detic_cli.modeling.meta_arch import CustomRCNN
from detic_cli.modeling.proposal.centernet import CenterNetProposals
from detic_cli.modeling.proposal.centernet_head import CenterNetHead
from detic_cli.modeling.roi_heads.box_head import FastRCNNConvFCHead
from detic_cli.modeling.roi_heads.cascade import DeticCascadeROIHeads
from detic_cli.modeling.roi_heads.fast_rcnn import DeticBoxPredictor
from detic_cli.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead


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
    return CenterNetProposals(head=head, in_features=list(c.IN_FEATURES), strides=list(c.FPN_STRIDES),
                              score_thresh=c.INFERENCE_TH, pre_nms_topk=(c.PRE_NMS_TOPK_TRAIN, c.PRE_NMS_TOPK_TEST),
                              post_nms_topk=(c.POST_NMS_TOPK_TRAIN, c.POST_NMS_TOPK_TEST),
                              nms_thresh=(c.NMS_TH_TRAIN, c.NMS_TH_TEST))


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


def build_cascade_heads(cfg: CfgNode, backbone: Backbone) -> DeticCascadeROIHeads:
    heads, box = cfg.MODEL.ROI_HEADS, cfg.MODEL.ROI_BOX_HEAD
    channels = backbone.out_channels[heads.IN_FEATURES[0]]
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
                                one_class_per_proposal=heads.ONE_CLASS_PER_PROPOSAL, **mask)


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
    extra = {}
    if cfg.MODEL.WITH_CAPTION:  # caption models carry CLIP's text tower (`text_encoder.*`)
        from detic_cli.modeling.text.text_encoder import TextEncoder

        extra["text_encoder"] = TextEncoder()
    model = CustomRCNN(backbone=backbone, proposal_generator=proposal_generator, roi_heads=roi_heads,
                       pixel_mean=list(cfg.MODEL.PIXEL_MEAN), pixel_std=list(cfg.MODEL.PIXEL_STD),
                       input_format=cfg.INPUT.FORMAT, extra_modules=extra)
    return model.eval()
