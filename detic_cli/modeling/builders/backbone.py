"""Config -> backbone: one bottom-up builder per family (MODEL.BACKBONE.NAME), an FPN on top where the name asks."""

from __future__ import annotations

from collections.abc import Callable

from detic_cli.config import CfgNode
from detic_cli.modeling.backbone.base import Backbone
from detic_cli.modeling.backbone.fpn import FPN, LastLevelP6P7
from detic_cli.modeling.builders.resnet import build_resnet_backbone


def build_timm_bottom_up(cfg: CfgNode) -> Backbone:
    """timm ResNet or ConvNeXt from MODEL.TIMM.*."""
    t = cfg.MODEL.TIMM
    if t.BASE_NAME.startswith("convnext"):
        from detic_cli.modeling.backbone.convnext import TimmConvNeXt

        return TimmConvNeXt(base_name=t.BASE_NAME, out_levels=list(t.OUT_LEVELS))
    from detic_cli.modeling.backbone.timm_resnet import TimmResNet

    return TimmResNet(base_name=t.BASE_NAME, out_levels=list(t.OUT_LEVELS), freeze_at=t.FREEZE_AT, norm=t.NORM)


def build_swin_bottom_up(cfg: CfgNode) -> Backbone:
    """Swin Transformer from MODEL.SWIN.*."""
    from detic_cli.modeling.backbone.swin import build_swin

    s = cfg.MODEL.SWIN
    return build_swin(s.SIZE, out_indices=tuple(s.OUT_FEATURES), use_checkpoint=s.USE_CHECKPOINT)


# MODEL.BACKBONE.NAME -> (bottom-up builder, FPN on top, P6/P7 levels on the FPN)
BACKBONE_BUILDERS: dict[str, tuple[Callable[[CfgNode], Backbone], bool, bool]] = {
    "build_timm_backbone": (build_timm_bottom_up, False, False),
    "build_p35_timm_fpn_backbone": (build_timm_bottom_up, True, False),
    "build_p67_timm_fpn_backbone": (build_timm_bottom_up, True, True),
    "build_swintransformer_fpn_backbone": (build_swin_bottom_up, True, True),
    "build_resnet_backbone": (build_resnet_backbone, False, False),
}


def build_bottom_up(cfg: CfgNode) -> Backbone:
    """The backbone of MODEL.BACKBONE.NAME without its FPN."""
    return BACKBONE_BUILDERS[cfg.MODEL.BACKBONE.NAME][0](cfg)


def build_backbone(cfg: CfgNode) -> Backbone:
    """The backbone of MODEL.BACKBONE.NAME, with the FPN of MODEL.FPN.* where the name has one."""
    build, with_fpn, p67 = BACKBONE_BUILDERS[cfg.MODEL.BACKBONE.NAME]
    bottom_up = build(cfg)
    if not with_fpn:
        return bottom_up
    f = cfg.MODEL.FPN
    top = LastLevelP6P7(f.OUT_CHANNELS, f.OUT_CHANNELS) if p67 else None
    return FPN(bottom_up=bottom_up, in_features=list(f.IN_FEATURES), out_channels=f.OUT_CHANNELS, top_block=top,
               fuse_type=f.FUSE_TYPE)
