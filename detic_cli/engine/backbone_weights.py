"""Third-party backbones made ready to train from: pulled, converted to detector keys once, cached beside the
download (what `detic zoo pull BACKBONE` and a training run starting from a backbone do).

`DETIC_HOME/weights/<backbone>.detector.pth` (`{"model": state_dict}`) holds a backbone's tensors under the
keys of the detector configs that start from it, placed as the first zoo row or stage using it builds them:
`backbone.bottom_up.base.*` (timm ResNets, ConvNeXt), `backbone.bottom_up.*` (Swin), `backbone.res2-4` and
`roi_heads.res5.*` (R50-C4), `detr.backbone.0.backbone.*` (Deformable DETR). The backbone's zoo record says
its file's layout (`converter`); the file is read and the result written through `checkpoint.io`, the key
map is the layout's in `checkpoint.keymaps`. Its record `<file>.json` has the fields of a download record
(size, sha256, source, time) plus `converted_from`: the source file, its sha256, the converter layout, the
config the keys were fitted to and the tensor counts. A re-pull is a no-op while the record matches the
download; `detic zoo verify` re-hashes it like any cached file.
"""

from __future__ import annotations

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

    from detic_cli.checkpoint.convert import Conversion

CONVERTED_SUFFIX = ".detector.pth"


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
    return made.get("sha256") == _source_sha256(backbone) and made.get("kind") == backbone.converter


def _model_state(config: str) -> dict[str, torch.Tensor]:
    """The state dict (keys and shapes) of the detector built from the project config `config`."""
    import torch

    from detic_cli.config import load_config
    from detic_cli.modeling.builders import build_model

    with torch.no_grad():
        return build_model(load_config(config_path(config))).state_dict()


def _convert(backbone: Backbone, source: Path, config: str) -> Conversion:
    """The conversion of `source` fitted to `config`; any failure (unreadable file, wrong layout) is one DeticError."""
    from detic_cli.checkpoint.convert import convert_state_dict, fit_to_model
    from detic_cli.checkpoint.io import read_state_dict

    try:
        conv = fit_to_model(convert_state_dict(read_state_dict(source), backbone.converter), _model_state(config))
    except DeticError as exc:
        raise DeticError(f"{source}: cannot convert {backbone.name} ({exc}); delete it and pull again") from exc
    if not conv.state:
        raise DeticError(f"{source}: no tensor fits configs/{config}; is it really {backbone.title}?")
    return conv


def convert_backbone(backbone: Backbone, source: Path) -> tuple[Path, dict[str, Any]]:
    """Convert the downloaded `source` of `backbone` into its cached detector-format file; returns the
    path and the `converted_from` record. A file whose tensors do not fit the config is a DeticError."""
    from detic_cli.checkpoint.convert import backbone_keys
    from detic_cli.checkpoint.io import write_checkpoint

    kind, config = backbone.converter, target_config(backbone)
    conv = _convert(backbone, source, config)
    asset = converted_asset(backbone)
    dest = cache.cached_path(asset)
    write_checkpoint(conv.state, dest)
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
