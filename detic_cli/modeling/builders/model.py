"""`build_model(cfg, data)`: the registry of meta-architectures, each with its config check and its builder."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from detic_cli.config import CfgNode
from detic_cli.errors import DeticError
from detic_cli.modeling.builders.custom_rcnn import build_custom_rcnn
from detic_cli.modeling.builders.deformable_detr import build_deformable_detr
from detic_cli.modeling.builders.model_data import ModelData
from detic_cli.modeling.builders.validate import check_custom_rcnn, check_deformable_detr, require

# MODEL.META_ARCHITECTURE -> (config check, builder)
META_ARCHITECTURES: dict[str, tuple[Callable[[CfgNode], None], Callable[[CfgNode, ModelData], nn.Module]]] = {
    "CustomRCNN": (check_custom_rcnn, build_custom_rcnn),
    "DeformableDetr": (check_deformable_detr, build_deformable_detr),
}


def build_model(cfg: CfgNode, data: ModelData | None = None) -> nn.Module:
    """The detector of MODEL.META_ARCHITECTURE with random weights, in eval mode.

    `data`: the class frequencies and tokenizer training may need (see ModelData); None for inference. A
    training loss that needs a missing one raises a DeticError naming it.

    Raises only DeticError for a config it cannot build: the checks run first; a module that still
    refuses its arguments (ValueError) is reported in one line as well.
    """
    arch = cfg.MODEL.META_ARCHITECTURE
    require("MODEL.META_ARCHITECTURE", arch, META_ARCHITECTURES)
    check, build = META_ARCHITECTURES[arch]
    check(cfg)
    try:
        model = build(cfg, data or ModelData())
    except ValueError as exc:
        raise DeticError(f"cannot build {arch} from this config: {exc}") from exc
    return model.eval()
