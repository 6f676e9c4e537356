"""Config -> the ROI heads' weak-supervision settings and the meta-architecture's dynamic class sampler."""

from __future__ import annotations

from torch import Tensor

from detic_cli.config import CfgNode
from detic_cli.modeling.roi_heads.weak_supervision import WeakSupervision
from detic_cli.modeling.weak_inputs import DynamicClassSampler


def build_weak_supervision(cfg: CfgNode) -> WeakSupervision:
    """Image-label and caption loss settings from MODEL.ROI_BOX_HEAD.*, WITH_IMAGE_LABELS, MODEL.WITH_CAPTION."""
    box = cfg.MODEL.ROI_BOX_HEAD
    return WeakSupervision(image_label_loss=box.IMAGE_LABEL_LOSS, image_loss_weight=box.IMAGE_LOSS_WEIGHT,
                           ws_num_props=box.WS_NUM_PROPS, add_image_box=box.ADD_IMAGE_BOX,
                           image_box_size=box.IMAGE_BOX_SIZE, softmax_weak_loss=box.SOFTMAX_WEAK_LOSS,
                           caption_weight=box.CAPTION_WEIGHT, neg_cap_weight=box.NEG_CAP_WEIGHT,
                           sync_caption_batch=bool(cfg.MODEL.SYNC_CAPTION_BATCH),
                           with_image_labels=bool(cfg.WITH_IMAGE_LABELS), with_caption=bool(cfg.MODEL.WITH_CAPTION))


def build_dynamic_class_sampler(cfg: CfgNode, class_counts: Tensor | None = None) -> DynamicClassSampler | None:
    """MODEL.DYNAMIC_CLASSIFIER's per-batch class sampler (None when off); `class_counts` (C,) training images per
    class, which box batches draw by."""
    if not cfg.MODEL.DYNAMIC_CLASSIFIER:
        return None
    box = cfg.MODEL.ROI_BOX_HEAD
    return DynamicClassSampler(num_sample=cfg.MODEL.NUM_SAMPLE_CATS,
                               class_counts=class_counts,
                               freq_weight_power=box.FED_LOSS_FREQ_WEIGHT)
