"""Pulled third-party backbones in detector format: converted once, cached beside the download.

`DETIC_HOME/weights/<backbone>.detector.pth` (`{"model": state_dict}`) holds a backbone's tensors under the
keys of the detector configs that start from it, placed as the first zoo row or stage using it builds them:
`backbone.bottom_up.base.*` (timm ResNets, ConvNeXt), `backbone.bottom_up.*` (Swin), `backbone.res2-4` and
`roi_heads.res5.*` (R50-C4), `detr.backbone.0.backbone.*` (Deformable DETR). Its record `<file>.json` has
the fields of a download record (size, sha256, source, time) plus `converted_from`: the source file, its
sha256, the converter layout, the config the keys were fitted to and the tensor counts. A re-pull is a
no-op while the record matches the download; `detic zoo verify` re-hashes it like any cached file.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filelock

from detic_cli.errors import DeticError
from detic_cli.progress import Progress, default_progress
from detic_cli.utils import atomic_write_bytes, sha256_file
from detic_cli.zoo import cache
from detic_cli.zoo.assets import Asset
from detic_cli.zoo.catalog import BACKBONES, ROWS, STAGES, Backbone
from detic_cli.zoo.download import fetch, is_cached
from detic_cli.zoo.resolve import config_path

if TYPE_CHECKING:
    import torch

CONVERTED_SUFFIX = ".detector.pth"
D2_RESNET = "d2-resnet"  # detectron2's own ResNet keys (`stem.*`, `resN.*`): the detector's, without `backbone.`
# The upstream layout of each backbone file (a `detic convert-pretrained --kind`, or D2_RESNET).
CONVERTER_KINDS: dict[str, str] = {
    "resnet50_miil_21k": "timm-resnet",
    "swin_base_patch4_window7_224_22k": "swin",
    "convnext_tiny_22k_224": "convnext",
    "resnet18": "timm-resnet",  # torchvision's file, whose names timm's resnet18 shares
    "R-50_MSRA": "msra-pkl",
    "R-50_torchvision": D2_RESNET,  # detectron2's tools/convert-torchvision-to-d2.py output
}
_WRAPPERS = ("model", "state_dict", "blobs")


@dataclass(frozen=True)
class PulledBackbone:
    """source: the downloaded file; path: its detector-format conversion; config: the config file name
    the keys were fitted to; converted: True when this call made `path` (False: it was up to date)."""

    source: Path
    path: Path
    config: str
    converted: bool


def converted_asset(backbone: Backbone) -> Asset:
    """The cache entry of the converted file, `<backbone name>.detector.pth` (made locally: no URL)."""
    return Asset(filename=f"{backbone.name}{CONVERTED_SUFFIX}", url="", kind="weights")


def converted_assets() -> list[Asset]:
    return [converted_asset(b) for b in BACKBONES]


def target_config(backbone: Backbone) -> str:
    """The config file name of the first row or stage that starts from `backbone`."""
    users = [r.config for r in ROWS if r.init == backbone.name] + [s.config for s in STAGES if s.init == backbone.name]
    if not users:
        raise DeticError(f"backbone {backbone.name}: no zoo row or stage starts from it")
    return users[0]


def _made_from(asset: Asset) -> dict[str, Any] | None:
    try:
        data = json.loads(cache.record_path(asset).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    made = data.get("converted_from") if isinstance(data, dict) else None
    return made if isinstance(made, dict) else None


def _source_sha256(backbone: Backbone) -> str:
    record = cache.read_record(backbone.weights)
    return record.sha256 if record is not None else sha256_file(cache.cached_path(backbone.weights))


def is_converted(backbone: Backbone) -> bool:
    """The converted file is cached with its recorded size and was made from the cached download."""
    asset = converted_asset(backbone)
    made = _made_from(asset)
    if made is None or cache.read_record(asset) is None or not is_cached(asset) or not is_cached(backbone.weights):
        return False
    return made.get("sha256") == _source_sha256(backbone) and made.get("kind") == CONVERTER_KINDS[backbone.name]


def read_upstream(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of an upstream checkpoint: `.pkl` through the restricted unpickler, anything else
    weights-only; unwraps `{"model"|"state_dict"|"blobs": ...}` and `module.`, drops caffe2 `_momentum`."""
    import numpy as np
    import torch

    from detic_cli.checkpoint.legacy_pickle import read_legacy_pickle
    from detic_cli.checkpoint.safe_load import read_checkpoint

    obj = read_legacy_pickle(path) if path.suffix == ".pkl" else read_checkpoint(path)
    obj = next((obj[w] for w in _WRAPPERS if isinstance(obj.get(w), dict)), obj)
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            value = torch.from_numpy(np.ascontiguousarray(value))
        if isinstance(value, torch.Tensor) and not str(key).endswith("_momentum"):
            state[str(key).removeprefix("module.")] = value
    if not state:
        raise DeticError(f"{path}: no tensors found; delete it and pull again")
    return state


def _model_state(config: str) -> dict[str, torch.Tensor]:
    """The state dict (keys and shapes) of the detector built from the project config `config`."""
    import torch

    from detic_cli.config import load_config
    from detic_cli.modeling.build import build_model

    with torch.no_grad():
        return build_model(load_config(config_path(config))).state_dict()


def convert_backbone(backbone: Backbone, source: Path) -> tuple[Path, dict[str, Any]]:
    """Convert the downloaded `source` of `backbone` into its cached detector-format file; returns the
    path and the `converted_from` record. A file whose tensors do not fit the config is a DeticError."""
    import torch

    from detic_cli.checkpoint.convert import backbone_keys, convert_state_dict, fit_to_model

    kind, config = CONVERTER_KINDS[backbone.name], target_config(backbone)
    state = read_upstream(source)
    if kind == D2_RESNET:
        state = {f"backbone.{k}": v for k, v in state.items()}
    try:
        conv = fit_to_model(convert_state_dict(state, "detector" if kind == D2_RESNET else kind), _model_state(config))
    except DeticError as exc:
        raise DeticError(f"{source}: cannot convert {backbone.name} ({exc}); delete it and pull again") from exc
    if not conv.state:
        raise DeticError(f"{source}: no tensor fits configs/{config}; is it really {backbone.title}?")
    buffer = io.BytesIO()
    torch.save({"model": conv.state}, buffer)
    asset = converted_asset(backbone)
    dest = cache.cached_path(asset)
    atomic_write_bytes(dest, buffer.getvalue())
    made = {"file": backbone.weights.filename, "sha256": _source_sha256(backbone), "kind": kind, "config": config,
            "mapped": len(conv.state), "unused": len(conv.unused),
            "backbone_random_init": backbone_keys(conv.random_init), "notes": conv.notes}
    record = {"size": dest.stat().st_size, "sha256": sha256_file(dest), "source": f"converted from "
              f"{backbone.weights.filename} ({kind}) for configs/{config}", "downloaded_at": time.time(),
              "converted_from": made}
    atomic_write_bytes(cache.record_path(asset), (json.dumps(record, indent=2) + "\n").encode("utf-8"))
    return dest, made


def pull_backbone(backbone: Backbone, *, mirror: str | None = None,
                  progress: Progress | None = None) -> PulledBackbone:
    """Download `backbone` (if missing) and convert it (if its conversion is missing or stale)."""
    progress = progress or default_progress()
    source = fetch(backbone.weights, mirror=mirror, progress=progress)
    asset, config = converted_asset(backbone), target_config(backbone)
    if is_converted(backbone):
        return PulledBackbone(source, cache.cached_path(asset), config, False)
    lock_file = cache.lock_path(asset)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(lock_file)):
        if is_converted(backbone):  # another process converted it while this one waited
            return PulledBackbone(source, cache.cached_path(asset), config, False)
        progress.note(f"{backbone.weights.filename}: converting to detector keys (configs/{config})")
        path, _ = convert_backbone(backbone, source)
    return PulledBackbone(source, path, config, True)
