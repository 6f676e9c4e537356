"""Each project config under configs/ resolves to the same effective values as the original config
it stands for (read from ../shared at test time).

The one key that deliberately differs is MODEL.WEIGHTS: the original names files a user had to
download and convert by hand (`models/X.pth`, `models/X.pkl`, `detectron2://...`); the project
names them `zoo://NAME`, which `detic_cli.zoo.resolve.resolve_weights_spec` turns into the cached
file (pulled when missing). Paths of unpublished stages (`output/...`) stay, except the R18 row,
whose original points to a stage name with a typo (`640b64` for the `640b32` config it trains).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from detic_cli.config.loader import load_config
from detic_cli.zoo.catalog import BACKBONES, ROWS, STAGES, weight_files
from detic_cli.zoo.resolve import configs_dir

CONFIGS = sorted({r.config for r in ROWS} | {s.config for s in STAGES})
_R18_FIX = ("output/Detic/BoxSup-C2_LCOCO_CLIP_R18_640b64_4x/model_final.pth",
            "output/Detic/BoxSup-C2_LCOCO_CLIP_R18_640b32_4x/model_final.pth")


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _expected_weights(original: str) -> str:
    """The project's MODEL.WEIGHTS for an original MODEL.WEIGHTS value."""
    for backbone in BACKBONES:
        if backbone.original_weights == original:
            return f"zoo://{backbone.name}"
    stem = Path(original).stem
    if original.startswith("models/") and stem in weight_files():
        return f"zoo://{stem}"
    return _R18_FIX[1] if original == _R18_FIX[0] else original


def test_every_project_config_is_a_zoo_config():
    assert sorted(p.name for p in configs_dir().glob("*.yaml")) == CONFIGS


@pytest.mark.parametrize("config", CONFIGS)
def test_same_effective_values_as_the_original(config, shared_dir):
    ours = _flat(load_config(configs_dir() / config).to_dict())
    theirs = _flat(load_config(shared_dir / "detic-reference" / "configs" / config).to_dict())
    assert ours.keys() == theirs.keys()
    different = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k] and k != "MODEL.WEIGHTS"}
    assert different == {}
    assert ours["MODEL.WEIGHTS"] == _expected_weights(theirs["MODEL.WEIGHTS"])


def test_row_init_matches_its_config_weights():
    for row in ROWS:
        weights = load_config(configs_dir() / row.config).MODEL.WEIGHTS
        if weights.startswith("zoo://"):
            assert weights == f"zoo://{row.init}", row.name
        else:
            assert row.init in weights, row.name
