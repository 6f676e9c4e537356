"""Config -> the RPN and Res5 ROI heads of the C4 (open-vocabulary COCO) models."""

from __future__ import annotations

from torch import nn

from detic_cli.config import CfgNode
from detic_cli.errors import DeticError
from detic_cli.layers.roi_pooler import ROIPooler
from detic_cli.modeling.backbone.base import Backbone
from detic_cli.modeling.build_resnet import build_res5_stage, build_rpn, feature_shapes
from detic_cli.modeling.roi_heads.res5 import CustomRes5ROIHeads


def build_c4_parts(cfg: CfgNode, backbone: Backbone) -> tuple[nn.Module, nn.Module]:
    """(RPN, CustomRes5ROIHeads) for `MODEL.PROPOSAL_GENERATOR.NAME` RPN and Res5 ROI heads."""
    from detic_cli.modeling.build import build_box_losses, build_box_predictor, build_proposal_sampler
    from detic_cli.modeling.build_weak import build_weak_supervision

    if cfg.MODEL.PROPOSAL_GENERATOR.NAME != "RPN":
        raise DeticError(f"MODEL.PROPOSAL_GENERATOR.NAME {cfg.MODEL.PROPOSAL_GENERATOR.NAME!r} is not supported")
    if cfg.MODEL.ROI_HEADS.NAME not in ("CustomRes5ROIHeads", "Res5ROIHeads"):
        raise DeticError(f"MODEL.ROI_HEADS.NAME {cfg.MODEL.ROI_HEADS.NAME!r} is not supported")
    if cfg.MODEL.MASK_ON:
        raise DeticError("MODEL.MASK_ON with Res5 ROI heads is not supported")
    heads, box = cfg.MODEL.ROI_HEADS, cfg.MODEL.ROI_BOX_HEAD
    res5 = build_res5_stage(cfg)
    pooler = ROIPooler(output_size=box.POOLER_RESOLUTION,
                       scales=[1.0 / backbone.out_strides[f] for f in heads.IN_FEATURES],
                       sampling_ratio=box.POOLER_SAMPLING_RATIO, aligned=box.POOLER_TYPE == "ROIAlignV2")
    predictor = build_box_predictor(cfg, cfg.MODEL.RESNETS.RES2_OUT_CHANNELS * 8,
                                    list(box.BBOX_REG_WEIGHTS), mlp=True)
    roi_heads = CustomRes5ROIHeads(in_features=list(heads.IN_FEATURES), pooler=pooler, res5=res5,
                                   box_predictor=predictor, score_thresh=heads.SCORE_THRESH_TEST,
                                   nms_thresh=heads.NMS_THRESH_TEST,
                                   detections_per_image=cfg.TEST.DETECTIONS_PER_IMAGE,
                                   mult_proposal_score=box.MULT_PROPOSAL_SCORE,
                                   sampler=build_proposal_sampler(cfg), losses=build_box_losses(cfg),
                                   weak=build_weak_supervision(cfg))
    return build_rpn(cfg, feature_shapes(backbone)), roi_heads
