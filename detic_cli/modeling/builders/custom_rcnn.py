"""Config -> Detic's CustomRCNN: backbone, proposal generator and ROI heads of the registered pair."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from detic_cli.config import CfgNode
from detic_cli.modeling.backbone.base import Backbone
from detic_cli.modeling.builders.backbone import build_backbone
from detic_cli.modeling.builders.model_data import ModelData
from detic_cli.modeling.builders.proposal_generator import build_centernet, build_rpn, feature_shapes
from detic_cli.modeling.builders.roi_heads import build_cascade_roi_heads, build_res5_roi_heads
from detic_cli.modeling.builders.weak_supervision import build_dynamic_class_sampler
from detic_cli.modeling.meta_arch import CustomRCNN


def _rpn(cfg: CfgNode, backbone: Backbone) -> nn.Module:
    return build_rpn(cfg, feature_shapes(backbone))


# (MODEL.PROPOSAL_GENERATOR.NAME, MODEL.ROI_HEADS.NAME) -> (proposal generator builder (cfg, backbone),
# ROI heads builder (cfg, backbone, class_counts))
HEAD_BUILDERS: dict[tuple[str, str], tuple[Callable[..., nn.Module], Callable[..., nn.Module]]] = {
    ("CenterNet", "DeticCascadeROIHeads"): (build_centernet, build_cascade_roi_heads),
    ("RPN", "CustomRes5ROIHeads"): (_rpn, build_res5_roi_heads),
    ("RPN", "Res5ROIHeads"): (_rpn, build_res5_roi_heads),
}


def build_custom_rcnn(cfg: CfgNode, data: ModelData) -> CustomRCNN:
    """The two-stage Detic detector with random weights; `data` as build_model's."""
    backbone = build_backbone(cfg)
    build_proposals, build_heads = HEAD_BUILDERS[(cfg.MODEL.PROPOSAL_GENERATOR.NAME, cfg.MODEL.ROI_HEADS.NAME)]
    text_encoder = None
    if cfg.MODEL.WITH_CAPTION:  # caption models carry CLIP's text tower (`text_encoder.*`), frozen
        from detic_cli.modeling.text.text_encoder import TextEncoder

        text_encoder = TextEncoder(tokenizer=data.tokenizer)
    return CustomRCNN(backbone=backbone, proposal_generator=build_proposals(cfg, backbone),
                      roi_heads=build_heads(cfg, backbone, data.class_counts), pixel_mean=list(cfg.MODEL.PIXEL_MEAN),
                      pixel_std=list(cfg.MODEL.PIXEL_STD), input_format=cfg.INPUT.FORMAT, text_encoder=text_encoder,
                      dataset_loss_weight=list(cfg.MODEL.DATASET_LOSS_WEIGHT),
                      sync_caption_batch=bool(cfg.MODEL.SYNC_CAPTION_BATCH), cap_batch_ratio=cfg.MODEL.CAP_BATCH_RATIO,
                      dynamic_classes=build_dynamic_class_sampler(cfg, data.class_counts))
