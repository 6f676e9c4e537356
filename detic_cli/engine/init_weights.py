"""What a training run starts from, as a detector-format checkpoint in the cache: --weights, a zoo row's
init, or the config's MODEL.WEIGHTS / MODEL.TIMM.PRETRAINED (`train_init_weights`).

A row (or unpublished stage) names its init in the catalog: a third-party backbone (pulled and
converted to the detector's keys), another row's released checkpoint (pulled as is), or an
unpublished stage, which the user has to train first.
"""

from __future__ import annotations

from pathlib import Path

from detic_cli.config import CfgNode
from detic_cli.engine.backbone_weights import pull_backbone
from detic_cli.engine.build import InitSettings, init_settings
from detic_cli.errors import DeticError
from detic_cli.progress import Progress
from detic_cli.zoo.catalog import weight_files
from detic_cli.zoo.download import fetch
from detic_cli.zoo.resolve import ZOO_SCHEME, find_asset, find_backbone, find_row, find_rows, find_stage


def init_name(row_name: str) -> str:
    """The catalog's init of a row (name, checkpoint stem or title) or of an unpublished stage."""
    stage = find_stage(row_name) if not find_rows(row_name) else None
    return stage.init if stage is not None else find_row(row_name).init


def resolve_init_weights(row_name: str, *, mirror: str | None = None, progress: Progress | None = None) -> Path:
    """The detector-format checkpoint (`{"model": state_dict}`) that training `row_name` starts from.

    A backbone init is pulled and converted (`DETIC_HOME/weights/<backbone>.detector.pth`), a row
    init is that row's released checkpoint (pulled). An unpublished stage is a DeticError that says
    which config trains it and to pass its weights with --weights. mirror: as for `detic zoo pull`.
    """
    init = init_name(row_name)
    backbone = find_backbone(init)
    if backbone is not None:
        return pull_backbone(backbone, mirror=mirror, progress=progress).path
    released = weight_files().get(init)
    if released is not None:
        return fetch(released, mirror=mirror, progress=progress)
    stage = find_stage(init)
    if stage is None:  # the catalog names only backbones, released checkpoints and stages
        raise DeticError(f"{row_name}: its init {init!r} is not in the zoo")
    raise DeticError(
        f"{row_name} starts from {stage.name}, whose weights were never published: train it first with "
        f"`detic train --row {stage.name}` (it starts from {stage.init}), then pass its "
        "model_final.pth with --weights"
    )


def resolve_init_spec(spec: str, *, mirror: str | None = None, progress: Progress | None = None) -> str:
    """A config's MODEL.WEIGHTS for training: `zoo://BACKBONE` becomes the pulled and converted file,
    `zoo://CHECKPOINT` the pulled checkpoint; anything else (a path, "") is returned unchanged."""
    if not spec.startswith(ZOO_SCHEME):
        return spec
    name = spec[len(ZOO_SCHEME):]
    backbone = find_backbone(name)
    if backbone is not None:
        return str(pull_backbone(backbone, mirror=mirror, progress=progress).path)
    return str(fetch(find_asset(name), mirror=mirror, progress=progress))


def train_init_weights(row: str | None, weights: Path | None, cfg: CfgNode | InitSettings,
                       mirror: str | None) -> Path | None:
    """--weights, else the row's init from the zoo, else the config's MODEL.WEIGHTS (`zoo://BACKBONE` pulled and
    converted; empty: the zoo's ImageNet backbone when MODEL.TIMM.PRETRAINED asks for one, else None: random init).
    `cfg`: the config or its InitSettings."""
    if weights is not None:
        return weights
    if row is not None:
        return resolve_init_weights(row, mirror=mirror)
    settings = cfg if isinstance(cfg, InitSettings) else init_settings(cfg)
    spec = settings.weights
    if not spec:
        return _timm_pretrained(settings, mirror)
    path = Path(resolve_init_spec(spec, mirror=mirror))
    if not path.is_file():
        raise DeticError(f"MODEL.WEIGHTS {spec}: file not found; train that stage first or give --weights PTH")
    return path


def _timm_pretrained(settings: InitSettings, mirror: str | None) -> Path | None:
    """MODEL.TIMM.PRETRAINED with no MODEL.WEIGHTS: the original let timm load its ImageNet weights; here the zoo's
    copy of them (`timm:BASE_NAME`), pulled and converted. None when the config asks for no pretrained backbone."""
    name = settings.timm_base_name
    if name is None:
        return None
    from detic_cli.zoo.catalog import BACKBONES

    backbone = next((b for b in BACKBONES if b.original_weights == f"timm:{name}"), None)
    if backbone is None:
        raise DeticError(f"MODEL.TIMM.PRETRAINED: the zoo has no ImageNet weights for MODEL.TIMM.BASE_NAME {name}; "
                         "give them with --weights PTH (see `detic convert-pretrained`), or set "
                         "MODEL.TIMM.PRETRAINED=False to start from random init")
    return pull_backbone(backbone, mirror=mirror).path
