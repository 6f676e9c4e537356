"""Map pretrained backbones from their upstream layouts to the project's detector keys.

The key map of each layout sits with its backbone family (`checkpoint.keymaps.resnet`, `.swin`,
`.convnext`): a pure function from an upstream state dict to (detector state dict, unused source keys).
Here: the registry of layouts, telling a file's layout from its keys, and `fit_to_model`, which moves
mapped tensors where a config wants them (``backbone.bottom_up.``, ``roi_heads.res5.``,
``detr.backbone.0.backbone.``) and accounts for what is left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from detic_cli.checkpoint.keymaps import convnext, resnet, swin
from detic_cli.checkpoint.keymaps.rename import KeyMap, Tensors
from detic_cli.checkpoint.load import is_derived
from detic_cli.errors import DeticError

# The layouts `detic convert-pretrained --kind` offers (the registry also has the zoo-only d2-resnet).
KINDS = ("timm-resnet", "swin", "convnext", "torchvision-resnet", "msra-pkl", "detector")
DETECTOR_PREFIXES = ("backbone.", "roi_heads.", "proposal_generator.", "detr.")
# The pretrained trunk inside a detector (not the FPN or heads built on it).
BACKBONE_PREFIXES = ("backbone.bottom_up.", "backbone.stem.", "backbone.res", "roi_heads.res5.",
                     "detr.backbone.0.backbone.")


@dataclass
class Conversion:
    """The result of one conversion: detector tensors plus the accounting the report prints."""

    kind: str
    state: dict[str, torch.Tensor]
    unused: list[str] = field(default_factory=list)
    random_init: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def map_detector(sd: Tensors) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Already in detector layout (the box-supervised Detic checkpoints): unchanged."""
    return dict(sd), []


MAPPERS: dict[str, KeyMap] = {**resnet.KEY_MAPS, **swin.KEY_MAPS, **convnext.KEY_MAPS, "detector": map_detector}


def detect_kind(sd: Tensors, model_keys: set[str] | None = None) -> str:
    """The upstream layout of `sd`; timm and torchvision ResNets share names, so the target (if known) or
    the 21K classifier decides between them."""
    keys = set(sd)
    if any(k.startswith(DETECTOR_PREFIXES) for k in keys):
        return "detector"
    if resnet.is_msra(keys):
        return "msra-pkl"
    if swin.is_swin(keys):
        return "swin"
    if convnext.is_convnext(keys):
        return "convnext"
    layout = resnet.resnet_layout(sd, model_keys)
    if layout is not None:
        return layout
    raise DeticError("cannot tell the layout of this checkpoint (no known ResNet, Swin, ConvNeXt or detector keys); "
                     f"pass --kind one of {', '.join(KINDS)}")


def convert_state_dict(sd: Tensors, kind: str = "auto", model_keys: set[str] | None = None) -> Conversion:
    """Map `sd` (layout `kind`, or detected) to detector keys."""
    if kind == "auto":
        kind = detect_kind(sd, model_keys)
    if kind not in MAPPERS:
        raise DeticError(f"--kind {kind}: choose auto or one of {', '.join(KINDS)}")
    state, unused = MAPPERS[kind](sd)
    if not state:
        raise DeticError(f"no tensor of this checkpoint maps as {kind}; check --kind")
    return Conversion(kind=kind, state=state, unused=sorted(unused))


def _placements(key: str) -> list[str]:
    """Where a mapped key may live in a given detector, in order of preference."""
    if not key.startswith("backbone."):
        return [key]
    rest = key[len("backbone."):]
    places = [key, "backbone.bottom_up." + rest, "detr.backbone.0.backbone." + rest]
    if rest.startswith("res5."):
        places.insert(1, "roi_heads." + rest)
    return places


def fit_to_model(conv: Conversion, model_state: Tensors) -> Conversion:
    """Place `conv` in a model's keys: unplaceable tensors become unused, model tensors not given are
    reported as random init; a shape mismatch is an error."""
    placed: dict[str, torch.Tensor] = {}
    unused = list(conv.unused)
    for key, value in conv.state.items():
        target = next((p for p in _placements(key) if p in model_state), None)
        if target is None:
            unused.append(key)
        else:
            placed[target] = value
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(model_state[k].shape)}" for k, v in placed.items()
             if v.shape != model_state[k].shape]
    if wrong:
        more = f" (+{len(wrong) - 2} more)" if len(wrong) > 2 else ""
        raise DeticError(f"shape mismatch against --config for {', '.join(wrong[:2])}{more}; check --config/--kind")
    missing = sorted(k for k in model_state if k not in placed and not is_derived(k))
    return Conversion(kind=conv.kind, state=placed, unused=sorted(unused), random_init=missing, notes=list(conv.notes))


def backbone_keys(keys: list[str]) -> list[str]:
    """The keys among `keys` that belong to the pretrained trunk."""
    return [k for k in keys if k.startswith(BACKBONE_PREFIXES)]
