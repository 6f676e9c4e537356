"""Config -> Deformable DETR (MODEL.META_ARCHITECTURE "DeformableDetr", MODEL.DETR.*) on the detectron2 ResNet.

Like the original, MODEL.ROI_HEADS.SCORE_THRESH_TEST is not used: the detector returns its top
TEST.DETECTIONS_PER_IMAGE detections whatever their score.
"""

from __future__ import annotations

from torch import Tensor

from detic_cli.config import CfgNode
from detic_cli.modeling.builders.model_data import ModelData
from detic_cli.modeling.builders.resnet import build_resnet_backbone
from detic_cli.modeling.detr.criterion import SetCriterion
from detic_cli.modeling.detr.deformable_detr import DeformableDETR
from detic_cli.modeling.detr.init import init_deformable_detr_
from detic_cli.modeling.detr.matcher import HungarianMatcher
from detic_cli.modeling.detr.meta_arch import DeformableDetr
from detic_cli.modeling.detr.transformer import DeformableTransformer


def build_set_criterion(cfg: CfgNode, class_counts: Tensor | None = None) -> SetCriterion:
    """The Hungarian matcher (costs = the loss weights, as in the original) and the set criterion; `class_counts`
    (C,) training images per class, for MODEL.DETR.USE_FED_LOSS."""
    d = cfg.MODEL.DETR
    matcher = HungarianMatcher(cost_class=d.CLS_WEIGHT, cost_bbox=d.L1_WEIGHT, cost_giou=d.GIOU_WEIGHT)
    return SetCriterion(num_classes=d.NUM_CLASSES, matcher=matcher, cls_weight=d.CLS_WEIGHT, l1_weight=d.L1_WEIGHT,
                        giou_weight=d.GIOU_WEIGHT, focal_alpha=d.FOCAL_ALPHA, use_fed_loss=bool(d.USE_FED_LOSS),
                        class_counts=class_counts)


def build_deformable_detr(cfg: CfgNode, data: ModelData) -> DeformableDetr:
    """The Detic Deformable DETR detector with the original's initial weights (random backbone); `data` as
    build_model's.

    State-dict keys match the original checkpoints (`detr.*`; the criterion holds no parameters or buffers).
    """
    d = cfg.MODEL.DETR
    transformer = DeformableTransformer(d_model=d.HIDDEN_DIM, nhead=d.NHEADS, num_encoder_layers=d.ENC_LAYERS,
                                        num_decoder_layers=d.DEC_LAYERS, dim_feedforward=d.DIM_FEEDFORWARD,
                                        dropout=d.DROPOUT, num_feature_levels=d.NUM_FEATURE_LEVELS,
                                        dec_n_points=4, enc_n_points=4,
                                        two_stage_num_proposals=d.NUM_OBJECT_QUERIES)
    detr = DeformableDETR(backbone=build_resnet_backbone(cfg), transformer=transformer, num_classes=d.NUM_CLASSES,
                          num_feature_levels=d.NUM_FEATURE_LEVELS)
    init_deformable_detr_(detr)
    criterion = build_set_criterion(cfg, data.class_counts)
    return DeformableDetr(detr=detr, num_classes=d.NUM_CLASSES, pixel_mean=list(cfg.MODEL.PIXEL_MEAN),
                          pixel_std=list(cfg.MODEL.PIXEL_STD), input_format=cfg.INPUT.FORMAT,
                          test_topk=cfg.TEST.DETECTIONS_PER_IMAGE, criterion=criterion,
                          deep_supervision=bool(d.DEEP_SUPERVISION), with_image_labels=bool(cfg.WITH_IMAGE_LABELS),
                          weak_weight=d.WEAK_WEIGHT)
