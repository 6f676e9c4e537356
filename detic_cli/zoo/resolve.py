"""Names to files: zoo rows, checkpoints and backbones by name; a model name to (config, weights)."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from detic_cli.errors import DeticError
from detic_cli.progress import Progress
from detic_cli.zoo.assets import Asset
from detic_cli.zoo.catalog import BACKBONES, ROWS, STAGES, Backbone, Stage, ZooRow, weight_files
from detic_cli.zoo.download import fetch

ZOO_SCHEME = "zoo://"
CONFIGS_ENV = "DETIC_CONFIGS"


def configs_dir() -> Path:
    """The project's zoo configs: `$DETIC_CONFIGS`, else `configs/` of this checkout."""
    env = os.environ.get(CONFIGS_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "configs"


def config_path(config: str) -> Path:
    """The project config file `config` (a file name from the catalog); it must exist."""
    path = configs_dir() / config
    if not path.is_file():
        raise DeticError(f"{path}: project config not found; set {CONFIGS_ENV} to the folder holding the zoo configs")
    return path


def all_names() -> list[str]:
    """Every name a user may type: row names, row titles, checkpoint stems, backbone names."""
    names = [r.name for r in ROWS] + [r.title for r in ROWS] + list(weight_files()) + [b.name for b in BACKBONES]
    return list(dict.fromkeys(names))


def _unknown(name: str, what: str) -> DeticError:
    lowered = {n.lower(): n for n in all_names()}
    close = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.5)]
    hint = f"; did you mean {', '.join(close)}?" if close else "; `detic zoo list` shows them all"
    return DeticError(f"{what} {name!r} is not in the zoo{hint}")


def find_rows(name: str) -> list[ZooRow]:
    """Rows called `name` (case-insensitive): a row name, a checkpoint stem, or a table title."""
    key = name.lower()
    for attr in ("name", "stem", "title"):
        found = [r for r in ROWS if getattr(r, attr).lower() == key]
        if found:
            return found
    return []


def find_row(name: str) -> ZooRow:
    """The one checkpoint `name` stands for (its first row); ambiguous titles list the choices."""
    rows = find_rows(name)
    if not rows:
        if find_backbone(name) is not None:
            raise DeticError(f"{name!r} is a backbone, not a detector; `detic zoo pull {name}` downloads it")
        raise _unknown(name, "model")
    if len({r.stem for r in rows}) > 1:
        raise DeticError(f"model {name!r} names several checkpoints; pick one of {', '.join(r.name for r in rows)}")
    return rows[0]


def find_backbone(name: str) -> Backbone | None:
    return next((b for b in BACKBONES if b.name.lower() == name.lower()), None)


def find_stage(name: str) -> Stage | None:
    """The unpublished training stage called `name` (case-insensitive), if any."""
    return next((s for s in STAGES if s.name.lower() == name.lower()), None)


def find_asset(name: str) -> Asset:
    """The file a row, checkpoint or backbone name stands for."""
    backbone = find_backbone(name)
    if backbone is not None:
        return backbone.weights
    stage = find_stage(name) if not find_rows(name) else None
    if stage is not None:
        raise DeticError(f"{name!r} was never published; train it with `detic train --row {stage.name}`")
    return find_row(name).weights


def resolve_model(name: str, *, mirror: str | None = None, progress: Progress | None = None) -> tuple[Path, Path]:
    """(project config path, cached weights path) of the zoo model `name`, pulling the weights if
    they are missing. Unknown names raise DeticError with the closest names."""
    row = find_row(name)
    config = config_path(row.config)
    return config, fetch(row.weights, mirror=mirror, progress=progress)


def resolve_weights_spec(spec: str, *, mirror: str | None = None, progress: Progress | None = None) -> str:
    """MODEL.WEIGHTS of the project configs: `zoo://NAME` becomes the cached file's path (pulled if
    missing); anything else (a path, "") is returned unchanged."""
    if not spec.startswith(ZOO_SCHEME):
        return spec
    return str(fetch(find_asset(spec[len(ZOO_SCHEME):]), mirror=mirror, progress=progress))
