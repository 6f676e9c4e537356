"""ResNet key maps: timm/MIIL, torchvision, caffe2 MSRA pickles and detectron2's own layout -> detector keys.

timm keeps its names under ``backbone.bottom_up.base.``; the others map to detectron2's ``backbone.stem`` /
``backbone.res2..res5``, which `checkpoint.convert.fit_to_model` moves where a config wants them.
"""

from __future__ import annotations

import re

import torch

from detic_cli.checkpoint.keymaps.rename import KeyMap, Tensors, rename_all

MIIL_21K_CLASSES = 11221
D2_RESNET = "d2-resnet"  # detectron2's own ResNet keys (`stem.*`, `resN.*`): the detector's, without `backbone.`


def map_timm_resnet(sd: Tensors) -> tuple[dict[str, torch.Tensor], list[str]]:
    """timm ResNet (MIIL ImageNet-21K): keys kept, under ``backbone.bottom_up.base.`` (the 21K `fc` too)."""
    return rename_all(sd, lambda k: "backbone.bottom_up.base." + k)


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
    return rename_all(sd, _torchvision_name)


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
    out, unused = rename_all(sd, _c2_name)
    for key in [k for k in out if k.endswith(".norm.weight")]:
        stem = key[: -len("weight")]
        out.setdefault(stem + "running_mean", torch.zeros_like(out[key]))
        out.setdefault(stem + "running_var", torch.ones_like(out[key]))
    return out, unused


def map_d2_resnet(sd: Tensors) -> tuple[dict[str, torch.Tensor], list[str]]:
    """detectron2's ResNet (`stem.conv1.*`, `res2.0.conv1.*`, as its torchvision converter writes) -> the same
    names under ``backbone.``, every tensor kept."""
    return {f"backbone.{k}": v for k, v in sd.items()}, []


def is_msra(keys: set[str]) -> bool:
    return "conv1_w" in keys or any(re.match(r"^res\d_\d+_branch", k) for k in keys)


def resnet_layout(sd: Tensors, model_keys: set[str] | None) -> str | None:
    """timm or torchvision for a `layerN` ResNet (they share names): the target's keys decide when known,
    else the 21K classifier; None when `sd` is no such ResNet."""
    if "layer1.0.conv1.weight" not in sd:
        return None
    if model_keys is not None:
        return "timm-resnet" if any(".bottom_up.base.layer1." in k for k in model_keys) else "torchvision-resnet"
    fc = sd.get("fc.weight")
    return "timm-resnet" if fc is not None and fc.shape[0] == MIIL_21K_CLASSES else "torchvision-resnet"


KEY_MAPS: dict[str, KeyMap] = {
    "timm-resnet": map_timm_resnet, "torchvision-resnet": map_torchvision_resnet, "msra-pkl": map_msra_pkl,
    D2_RESNET: map_d2_resnet,
}
