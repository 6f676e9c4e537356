"""Checks a config against what the builders support, before anything is built.

Every unsupported option is one `DeticError` line that names the config key and the supported values.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from detic_cli.config import CfgNode
from detic_cli.errors import DeticError
from detic_cli.modeling.builders.backbone import BACKBONE_BUILDERS
from detic_cli.modeling.builders.custom_rcnn import HEAD_BUILDERS

RESNET_DEPTHS = (18, 34, 50, 101, 152)
RESNET_STAGES = ("stem", "res2", "res3", "res4", "res5")
NORMS = ("FrozenBN", "BN", "SyncBN", "GN", "")
RPN_BOX_LOSSES = ("smooth_l1", "giou", "diou", "ciou")
CENTERNET_BOX_LOSSES = ("iou", "linear_iou", "giou")


def require(key: str, value: Any, supported: Iterable[Any]) -> None:
    """DeticError unless `value` is one of `supported`."""
    supported = list(supported)
    if value not in supported:
        raise DeticError(f"{key} {value!r} is not supported (use one of: {', '.join(map(repr, supported))})")


def check_resnet(cfg: CfgNode) -> None:
    """MODEL.RESNETS.* of the detectron2-style ResNet."""
    r = cfg.MODEL.RESNETS
    require("MODEL.RESNETS.DEPTH", r.DEPTH, RESNET_DEPTHS)
    require("MODEL.RESNETS.NORM", r.NORM, NORMS)
    require("MODEL.RESNETS.RES5_DILATION", r.RES5_DILATION, (1, 2))
    for name in list(r.OUT_FEATURES) or [None]:
        require("MODEL.RESNETS.OUT_FEATURES entry", name, RESNET_STAGES)
    if any(r.DEFORM_ON_PER_STAGE):
        raise DeticError("MODEL.RESNETS.DEFORM_ON_PER_STAGE (deformable convs) is not supported: set every "
                         "stage False")


def check_backbone(cfg: CfgNode) -> None:
    """MODEL.BACKBONE.NAME and the keys of its family (MODEL.TIMM / SWIN / RESNETS, MODEL.FPN)."""
    name = cfg.MODEL.BACKBONE.NAME
    require("MODEL.BACKBONE.NAME", name, BACKBONE_BUILDERS)
    family, with_fpn, _ = BACKBONE_BUILDERS[name]
    if family.__name__ == "build_timm_bottom_up":
        _check_timm(cfg.MODEL.TIMM)
    elif family.__name__ == "build_swin_bottom_up":
        from detic_cli.modeling.backbone.swin import SWIN_SIZES

        require("MODEL.SWIN.SIZE", cfg.MODEL.SWIN.SIZE, SWIN_SIZES)
    else:
        check_resnet(cfg)
    if with_fpn:
        require("MODEL.FPN.FUSE_TYPE", cfg.MODEL.FPN.FUSE_TYPE, ("sum", "avg"))


def _check_timm(t: CfgNode) -> None:
    if not t.BASE_NAME.startswith("convnext"):
        if not t.BASE_NAME.startswith("resnet"):
            raise DeticError(f"MODEL.TIMM.BASE_NAME {t.BASE_NAME!r} is not supported (use a timm resnet* or "
                             "convnext_* name)")
        require("MODEL.TIMM.NORM", t.NORM, NORMS)
        return
    from detic_cli.modeling.backbone.convnext import CONVNEXT_SIZES

    require("MODEL.TIMM.BASE_NAME", t.BASE_NAME, CONVNEXT_SIZES)
    for level in list(t.OUT_LEVELS) or [None]:
        require("MODEL.TIMM.OUT_LEVELS entry (ConvNeXt)", level, (1, 2, 3, 4))


def check_centernet(c: CfgNode) -> None:
    """MODEL.CENTERNET.*: Detic's class-agnostic proposal network only."""
    if not (c.ONLY_PROPOSAL and c.WITH_AGN_HM):
        raise DeticError("CenterNet is supported as Detic's proposal network: set MODEL.CENTERNET.ONLY_PROPOSAL "
                         "and MODEL.CENTERNET.WITH_AGN_HM True")
    if c.MORE_POS:
        raise DeticError("MODEL.CENTERNET.MORE_POS is not supported (Detic's configs leave it False)")
    require("MODEL.CENTERNET.LOC_LOSS_TYPE", c.LOC_LOSS_TYPE, CENTERNET_BOX_LOSSES)
    require("MODEL.CENTERNET.NORM", c.NORM, ("GN", ""))
    if len(c.SOI) != len(c.FPN_STRIDES):
        raise DeticError(f"MODEL.CENTERNET.SOI needs one [lo, hi] range per level of FPN_STRIDES {c.FPN_STRIDES}")


def check_rpn(cfg: CfgNode) -> None:
    """MODEL.RPN.* and MODEL.ANCHOR_GENERATOR.NAME."""
    require("MODEL.RPN.HEAD_NAME", cfg.MODEL.RPN.HEAD_NAME, ("StandardRPNHead",))
    require("MODEL.ANCHOR_GENERATOR.NAME", cfg.MODEL.ANCHOR_GENERATOR.NAME, ("DefaultAnchorGenerator",))
    require("MODEL.RPN.BBOX_REG_LOSS_TYPE", cfg.MODEL.RPN.BBOX_REG_LOSS_TYPE, RPN_BOX_LOSSES)


def check_cascade_heads(cfg: CfgNode) -> None:
    """MODEL.ROI_BOX_CASCADE_HEAD, ROI_BOX_HEAD and ROI_MASK_HEAD keys of the cascade heads."""
    cascade, box = cfg.MODEL.ROI_BOX_CASCADE_HEAD, cfg.MODEL.ROI_BOX_HEAD
    if len(cascade.IOUS) != len(cascade.BBOX_REG_WEIGHTS):
        raise DeticError(f"MODEL.ROI_BOX_CASCADE_HEAD: {len(cascade.IOUS)} IOUS for "
                         f"{len(cascade.BBOX_REG_WEIGHTS)} BBOX_REG_WEIGHTS (one per stage)")
    require("MODEL.ROI_BOX_HEAD.POOLER_TYPE", box.POOLER_TYPE, ("ROIAlignV2",))
    require("MODEL.ROI_BOX_HEAD.NUM_CONV", box.NUM_CONV, (0,))
    if cfg.MODEL.MASK_ON:
        require("MODEL.ROI_MASK_HEAD.POOLER_TYPE", cfg.MODEL.ROI_MASK_HEAD.POOLER_TYPE, ("ROIAlignV2",))


def check_res5_heads(cfg: CfgNode) -> None:
    """The C4 models' Res5 heads: no mask head, no deformable res5."""
    if cfg.MODEL.MASK_ON:
        raise DeticError("MODEL.MASK_ON with Res5 ROI heads is not supported: set MODEL.MASK_ON False")
    check_resnet(cfg)


def check_heads(cfg: CfgNode) -> None:
    """The (proposal generator, ROI heads) pair and the keys each reads."""
    proposals, heads = cfg.MODEL.PROPOSAL_GENERATOR.NAME, cfg.MODEL.ROI_HEADS.NAME
    require("MODEL.PROPOSAL_GENERATOR.NAME", proposals, dict.fromkeys(p for p, _ in HEAD_BUILDERS))
    require(f"MODEL.ROI_HEADS.NAME (with MODEL.PROPOSAL_GENERATOR.NAME {proposals!r})", heads,
            [h for p, h in HEAD_BUILDERS if p == proposals])
    if proposals == "CenterNet":
        check_centernet(cfg.MODEL.CENTERNET)
        check_cascade_heads(cfg)
    else:
        check_rpn(cfg)
        check_res5_heads(cfg)
    box = cfg.MODEL.ROI_BOX_HEAD
    if not box.USE_ZEROSHOT_CLS and not box.CLS_AGNOSTIC_BBOX_REG:
        raise DeticError("MODEL.ROI_BOX_HEAD: only class-agnostic box regression (CLS_AGNOSTIC_BBOX_REG True) "
                         "is supported with USE_ZEROSHOT_CLS False")


def check_weak_supervision(cfg: CfgNode) -> None:
    """Weak-supervision and dynamic-classifier keys (MODEL.ROI_BOX_HEAD.*, MODEL.DYNAMIC_CLASSIFIER)."""
    box = cfg.MODEL.ROI_BOX_HEAD
    if box.WITH_SOFTMAX_PROP:
        raise DeticError("MODEL.ROI_BOX_HEAD.WITH_SOFTMAX_PROP (the wsod/wsddn proposal-score head) is not supported")
    if not cfg.MODEL.DYNAMIC_CLASSIFIER:
        return
    if box.USE_FED_LOSS or box.IGNORE_ZERO_CATS:
        raise DeticError("MODEL.DYNAMIC_CLASSIFIER already samples the classes of each batch: set "
                         "MODEL.ROI_BOX_HEAD.USE_FED_LOSS=False and IGNORE_ZERO_CATS=False")
    if cfg.MODEL.WITH_CAPTION:
        raise DeticError("MODEL.DYNAMIC_CLASSIFIER and MODEL.WITH_CAPTION cannot be combined (as in the original)")


def check_custom_rcnn(cfg: CfgNode) -> None:
    """Everything CustomRCNN's builders read."""
    check_backbone(cfg)
    check_heads(cfg)
    check_weak_supervision(cfg)


def check_deformable_detr(cfg: CfgNode) -> None:
    """Deformable DETR in its two-stage, box-refinement form on the detectron2 ResNet (MODEL.DETR.*)."""
    d = cfg.MODEL.DETR
    if not (d.TWO_STAGE and d.WITH_BOX_REFINE):
        raise DeticError("Deformable DETR is supported in its two-stage, box-refinement form "
                         "(MODEL.DETR.TWO_STAGE and MODEL.DETR.WITH_BOX_REFINE true), as in the Detic configs")
    if cfg.MODEL.MASK_ON:
        raise DeticError("Deformable DETR has no mask head: set MODEL.MASK_ON False")
    if d.PRE_NORM:
        raise DeticError("MODEL.DETR.PRE_NORM is not supported by Deformable DETR")
    require("MODEL.BACKBONE.NAME (Deformable DETR)", cfg.MODEL.BACKBONE.NAME, ("build_resnet_backbone",))
    if d.HIDDEN_DIM % d.NHEADS:
        raise DeticError(f"MODEL.DETR.HIDDEN_DIM {d.HIDDEN_DIM} must be divisible by MODEL.DETR.NHEADS {d.NHEADS}")
    check_resnet(cfg)
