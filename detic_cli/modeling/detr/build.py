"""Config -> Deformable DETR (META_ARCHITECTURE "DeformableDetr"); the only file here that reads the config.

Reads cfg.MODEL.DETR.*, cfg.MODEL.RESNETS.* (through build_resnet_backbone), MODEL.PIXEL_MEAN/STD,
INPUT.FORMAT and TEST.DETECTIONS_PER_IMAGE. Like the original, MODEL.ROI_HEADS.SCORE_THRESH_TEST is
not used: the detector returns its top DETECTIONS_PER_IMAGE detections whatever their score.
"""

from __future__ import annotations

from typing import Any

from detic_cli.errors import DeticError
from detic_cli.modeling.build_resnet import build_resnet_backbone
from detic_cli.modeling.detr.deformable_detr import DeformableDETR
from detic_cli.modeling.detr.meta_arch import DeformableDetr
from detic_cli.modeling.detr.transformer import DeformableTransformer

__all__ = ["build_deformable_detr"]


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


def build_deformable_detr(cfg: Any) -> DeformableDetr:
    """The Detic Deformable DETR detector with random weights, in eval mode.

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
    model = DeformableDetr(detr=detr, num_classes=d.NUM_CLASSES, pixel_mean=list(cfg.MODEL.PIXEL_MEAN),
                           pixel_std=list(cfg.MODEL.PIXEL_STD), input_format=cfg.INPUT.FORMAT,
                           test_topk=cfg.TEST.DETECTIONS_PER_IMAGE)
    return model.eval()
