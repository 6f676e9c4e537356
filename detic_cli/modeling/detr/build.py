"""Config -> Deformable DETR (META_ARCHITECTURE "DeformableDetr"); the only file here that reads the config.

Reads cfg.MODEL.DETR.*, cfg.MODEL.RESNETS.* (through build_resnet_backbone), MODEL.PIXEL_MEAN/STD,
INPUT.FORMAT and TEST.DETECTIONS_PER_IMAGE, and for the training losses MODEL.DETR.{CLS,L1,GIOU}_WEIGHT,
FOCAL_ALPHA, DEEP_SUPERVISION, USE_FED_LOSS (classes from MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH, read on the
first loss), WEAK_WEIGHT and WITH_IMAGE_LABELS. Like the original, MODEL.ROI_HEADS.SCORE_THRESH_TEST is
not used: the detector returns its top DETECTIONS_PER_IMAGE detections whatever their score.
"""

from __future__ import annotations

from typing import Any

from detic_cli.errors import DeticError
from detic_cli.modeling.build_resnet import build_resnet_backbone
from detic_cli.modeling.detr.criterion import SetCriterion
from detic_cli.modeling.detr.deformable_detr import DeformableDETR
from detic_cli.modeling.detr.init import init_deformable_detr_
from detic_cli.modeling.detr.matcher import HungarianMatcher
from detic_cli.modeling.detr.meta_arch import DeformableDetr
from detic_cli.modeling.detr.transformer import DeformableTransformer

__all__ = ["build_criterion", "build_deformable_detr"]


def _check_supported(cfg: Any) -> None:
    d = cfg.MODEL.DETR
    if not (d.TWO_STAGE and d.WITH_BOX_REFINE):
        raise DeticError("Deformable DETR is supported in its two-stage, box-refinement form "
                         "(MODEL.DETR.TWO_STAGE and MODEL.DETR.WITH_BOX_REFINE true), as in the Detic configs")
    if cfg.MODEL.MASK_ON:
        raise DeticError("Deformable DETR has no mask head: set MODEL.MASK_ON False")
    if d.PRE_NORM:
        raise DeticError("MODEL.DETR.PRE_NORM is not supported by Deformable DETR")
    if cfg.MODEL.BACKBONE.NAME != "build_resnet_backbone":
        raise DeticError(f"Deformable DETR runs on build_resnet_backbone, not {cfg.MODEL.BACKBONE.NAME!r}")


def build_criterion(cfg: Any) -> SetCriterion:
    """The Hungarian matcher (costs = the loss weights, as in the original) and the set criterion."""
    from detic_cli.modeling.build import _dataset_path

    d = cfg.MODEL.DETR
    matcher = HungarianMatcher(cost_class=d.CLS_WEIGHT, cost_bbox=d.L1_WEIGHT, cost_giou=d.GIOU_WEIGHT)
    freq = cfg.MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH
    return SetCriterion(num_classes=d.NUM_CLASSES, matcher=matcher, cls_weight=d.CLS_WEIGHT, l1_weight=d.L1_WEIGHT,
                        giou_weight=d.GIOU_WEIGHT, focal_alpha=d.FOCAL_ALPHA, use_fed_loss=bool(d.USE_FED_LOSS),
                        cat_freq_path=_dataset_path(freq) if freq else None)


def build_deformable_detr(cfg: Any) -> DeformableDetr:
    """The Detic Deformable DETR detector with the original's initial weights (random backbone), in eval mode.

    State-dict keys match the original checkpoints (`detr.*`; `criterion.fed_loss_weight` is a
    derived training buffer and is not part of this model).
    """
    _check_supported(cfg)
    d = cfg.MODEL.DETR
    transformer = DeformableTransformer(d_model=d.HIDDEN_DIM, nhead=d.NHEADS, num_encoder_layers=d.ENC_LAYERS,
                                        num_decoder_layers=d.DEC_LAYERS, dim_feedforward=d.DIM_FEEDFORWARD,
                                        dropout=d.DROPOUT, num_feature_levels=d.NUM_FEATURE_LEVELS,
                                        dec_n_points=4, enc_n_points=4,
                                        two_stage_num_proposals=d.NUM_OBJECT_QUERIES)
    detr = DeformableDETR(backbone=build_resnet_backbone(cfg), transformer=transformer, num_classes=d.NUM_CLASSES,
                          num_feature_levels=d.NUM_FEATURE_LEVELS)
    init_deformable_detr_(detr)
    model = DeformableDetr(detr=detr, num_classes=d.NUM_CLASSES, pixel_mean=list(cfg.MODEL.PIXEL_MEAN),
                           pixel_std=list(cfg.MODEL.PIXEL_STD), input_format=cfg.INPUT.FORMAT,
                           test_topk=cfg.TEST.DETECTIONS_PER_IMAGE, criterion=build_criterion(cfg),
                           deep_supervision=bool(d.DEEP_SUPERVISION),
                           with_image_labels=bool(cfg.WITH_IMAGE_LABELS), weak_weight=d.WEAK_WEIGHT)
    return model.eval()
