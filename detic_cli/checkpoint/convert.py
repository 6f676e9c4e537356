"""Map pretrained backbones from their upstream layouts to the project's detector keys (pure functions).

Each `map_*` takes an upstream state dict and returns (detector state dict, unused source keys). Buffers a
model rebuilds itself (BN step counters, Swin index tables and attention masks) are dropped, not reported.
ResNet layouts map to ``backbone.stem/res2..res5``; `fit_to_model` moves them where a config wants them
(``backbone.bottom_up.``, ``roi_heads.res5.``, ``detr.backbone.0.backbone.``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from detic_cli.checkpoint.load import is_derived
from detic_cli.errors import DeticError

Tensors = Mapping[str, torch.Tensor]
KINDS = ("timm-resnet", "swin", "convnext", "torchvision-resnet", "msra-pkl", "detector")
DETECTOR_PREFIXES = ("backbone.", "roi_heads.", "proposal_generator.", "detr.")
# The pretrained trunk inside a detector (not the FPN or heads built on it).
BACKBONE_PREFIXES = ("backbone.bottom_up.", "backbone.stem.", "backbone.res", "roi_heads.res5.",
                     "detr.backbone.0.backbone.")
MIIL_21K_CLASSES = 11221
_DROPPED_SUFFIXES = ("num_batches_tracked", "relative_position_index", "attn_mask")


@dataclass
class Conversion:
    """The result of one conversion: detector tensors plus the accounting the report prints."""

    kind: str
    state: dict[str, torch.Tensor]
    unused: list[str] = field(default_factory=list)
    random_init: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _rename_all(sd: Tensors, rename: Callable[[str], str | None]) -> tuple[dict[str, torch.Tensor], list[str]]:
    out: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    for key, value in sd.items():
        if key.endswith(_DROPPED_SUFFIXES):
            continue
        new = rename(key)
        if new is None:
            unused.append(key)
        else:
            out[new] = value
    return out, unused


def map_timm_resnet(sd: Tensors) -> tuple[dict[str, torch.Tensor], list[str]]:
    """timm ResNet (MIIL ImageNet-21K): keys kept, under ``backbone.bottom_up.base.`` (the 21K `fc` too)."""
    return _rename_all(sd, lambda k: "backbone.bottom_up.base." + k)


_TV_RULES = [
    (r"^conv1\.weight$", r"stem.conv1.weight"),
    (r"^bn1\.(\w+)$", r"stem.conv1.norm.\1"),
    (r"^layer(\d)\.(\d+)\.conv(\d)\.weight$", r"res{\1}.\2.conv\3.weight"),
    (r"^layer(\d)\.(\d+)\.bn(\d)\.(\w+)$", r"res{\1}.\2.conv\3.norm.\4"),
    (r"^layer(\d)\.(\d+)\.downsample\.0\.weight$", r"res{\1}.\2.shortcut.weight"),
    (r"^layer(\d)\.(\d+)\.downsample\.1\.(\w+)$", r"res{\1}.\2.shortcut.norm.\3"),
]


def _torchvision_name(key: str) -> str | None:
    for pattern, repl in _TV_RULES:
        if re.match(pattern, key):
            name = re.sub(pattern, repl, key)
            # torchvision's layerN is detectron2's res(N+1)
            return "backbone." + re.sub(r"res\{(\d)\}", lambda m: f"res{int(m.group(1)) + 1}", name)
    return None


def map_torchvision_resnet(sd: Tensors) -> tuple[dict[str, torch.Tensor], list[str]]:
    """torchvision ResNet (conv1, bn1, layerN.M.convK/bnK, downsample.0/1) -> detectron2 stem/resN names."""
    return _rename_all(sd, _torchvision_name)


_C2_RULES = [  # caffe2 -> detectron2, applied in order after "_" -> "."
    (r"\.b$", ".bias"), (r"\.w$", ".weight"),
    (r"bn\.s$", "norm.weight"), (r"bn\.bias$", "norm.bias"), (r"bn\.rm$", "norm.running_mean"),
    (r"bn\.riv$", "norm.running_var"), (r"bn\.running\.mean$", "norm.running_mean"),
    (r"bn\.running\.var$", "norm.running_var"), (r"bn\.gamma$", "norm.weight"), (r"bn\.beta$", "norm.bias"),
    (r"^res\.conv1\.norm\.", "conv1.norm."), (r"^conv1\.", "stem.conv1."),
    (r"\.branch1\.", ".shortcut."), (r"\.branch2a\.", ".conv1."), (r"\.branch2b\.", ".conv2."),
    (r"\.branch2c\.", ".conv3."),
]


def _c2_name(key: str) -> str | None:
    name = key.replace("_", ".")
    for pattern, repl in _C2_RULES:
        name = re.sub(pattern, repl, name)
    if not re.match(r"^(stem\.conv1|res[2-5]\.\d+\.(conv[1-3]|shortcut))\.", name):
        return None  # the classifier (fc1000_*) and anything not in the ResNet trunk
    return "backbone." + name


def map_msra_pkl(sd: Tensors) -> tuple[dict[str, torch.Tensor], list[str]]:
    """caffe2 MSRA ResNet (`conv1_w`, `res2_0_branch2a_w`, `res_conv1_bn_s`) -> detectron2 names.

    Its affine batch norms carry no statistics: like detectron2, running mean 0 and variance 1 are added.
    """
    out, unused = _rename_all(sd, _c2_name)
    for key in [k for k in out if k.endswith(".norm.weight")]:
        stem = key[: -len("weight")]
        out.setdefault(stem + "running_mean", torch.zeros_like(out[key]))
        out.setdefault(stem + "running_var", torch.ones_like(out[key]))
    return out, unused


def map_swin(sd: Tensors) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Microsoft Swin (`layers.N.downsample` ends stage N) or timm 1.x (it starts stage N+1) -> bottom-up keys.

    The classifier (`head`) and the final `norm` are unused; the detector's norm1..3 start from scratch.
    """
    timm_layout = not any(k.startswith("layers.0.downsample.") for k in sd) and any(
        k.startswith("layers.1.downsample.") for k in sd)

    def rename(key: str) -> str | None:
        if key.startswith(("head.", "norm.")):
            return None
        if timm_layout:
            key = re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"layers.{int(m.group(1)) - 1}.downsample.", key)
        return "backbone.bottom_up." + key

    return _rename_all(sd, rename)


_CONVNEXT_RULES = [  # official (facebookresearch/ConvNeXt) and timm layouts -> timm features_only names
    (r"^downsample_layers\.0\.(\d)\.", r"stem_\1."), (r"^stem\.(\d)\.", r"stem_\1."),
    (r"^downsample_layers\.(\d)\.", r"stages_\1.downsample."),
    (r"^stages\.(\d)\.downsample\.", r"stages_\1.downsample."),
    (r"^stages\.(\d)\.blocks\.(\d+)\.", r"stages_\1.blocks.\2."), (r"^stages\.(\d)\.(\d+)\.", r"stages_\1.blocks.\2."),
]
_CONVNEXT_BLOCK = {"dwconv": "conv_dw.", "pwconv1": "mlp.fc1.", "pwconv2": "mlp.fc2."}


def _convnext_name(key: str) -> str | None:
    for pattern, repl in _CONVNEXT_RULES:
        if re.match(pattern, key):
            name = re.sub(pattern, repl, key)
            name = re.sub(r"(\.blocks\.\d+\.)(dwconv|pwconv1|pwconv2)\.",
                          lambda m: m.group(1) + _CONVNEXT_BLOCK[m.group(2)], name)
            return "backbone.bottom_up.base." + name
    return None  # head, final norm / norm_pre


def map_convnext(sd: Tensors) -> tuple[dict[str, torch.Tensor], list[str]]:
    """ConvNeXt (official `convnext_tiny_22k_224.pth` or timm) -> ``backbone.bottom_up.base.stem_0 ...``."""
    return _rename_all(sd, _convnext_name)


def map_detector(sd: Tensors) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Already in detector layout (the box-supervised Detic checkpoints): unchanged."""
    return dict(sd), []


MAPPERS: dict[str, Callable[[Tensors], tuple[dict[str, torch.Tensor], list[str]]]] = {
    "timm-resnet": map_timm_resnet, "swin": map_swin, "convnext": map_convnext,
    "torchvision-resnet": map_torchvision_resnet, "msra-pkl": map_msra_pkl, "detector": map_detector,
}


def detect_kind(sd: Tensors, model_keys: set[str] | None = None) -> str:
    """The upstream layout of `sd`; timm and torchvision ResNets share names, so the target (if known) or
    the 21K classifier decides between them."""
    keys = set(sd)
    if any(k.startswith(DETECTOR_PREFIXES) for k in keys):
        return "detector"
    if "conv1_w" in keys or any(re.match(r"^res\d_\d+_branch", k) for k in keys):
        return "msra-pkl"
    if "patch_embed.proj.weight" in keys:
        return "swin"
    if "downsample_layers.0.0.weight" in keys or ("stem.0.weight" in keys and "stages.0.blocks.0.gamma" in keys):
        return "convnext"
    if "layer1.0.conv1.weight" in keys:
        if model_keys is not None:
            timm_target = any(".bottom_up.base.layer1." in k for k in model_keys)
            return "timm-resnet" if timm_target else "torchvision-resnet"
        fc = sd.get("fc.weight")
        return "timm-resnet" if fc is not None and fc.shape[0] == MIIL_21K_CLASSES else "torchvision-resnet"
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
