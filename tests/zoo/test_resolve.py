"""Names to files: resolve_model, ambiguous and unknown names, zoo:// weights."""

from __future__ import annotations

import pytest

from detic_cli.errors import DeticError
from detic_cli.progress import NullProgress
from detic_cli.zoo import cache
from detic_cli.zoo.catalog import DEFAULT_MODEL, ROWS
from detic_cli.zoo.resolve import configs_dir, find_asset, find_row, resolve_model, resolve_weights_spec


@pytest.fixture
def mirror(tmp_path):
    """A mirror folder holding a stand-in for the default model's checkpoint."""
    (tmp_path / f"{DEFAULT_MODEL}.pth").write_bytes(b"checkpoint bytes")
    (tmp_path / "swin_base_patch4_window7_224_22k.pth").write_bytes(b"backbone bytes")
    return str(tmp_path)


def test_resolve_model_pulls_missing_weights(mirror):
    config, weights = resolve_model(DEFAULT_MODEL, mirror=mirror, progress=NullProgress())
    assert config == configs_dir() / f"{DEFAULT_MODEL}.yaml"
    assert weights == cache.cached_path(find_row(DEFAULT_MODEL).weights)
    assert weights.read_bytes() == b"checkpoint bytes"
    # every name of the same checkpoint resolves to the same pair, now from the cache
    for name in ("cross-dataset/Detic_C2_SwinB_896_4x_IN-21K+COCO", "real-time/Detic_C2_SwinB_896_4x_IN-21K+COCO",
                 "detic_c2_swinb_896_4x_in-21k+coco"):
        assert resolve_model(name) == (config, weights)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(DeticError, match="'Detic_LCOCOI21k_CLIP_SwinB' is not in the zoo; did you mean "
                                         "Detic_LCOCOI21k_CLIP_SwinB_896b32_4x_ft4x_max-size"):
        resolve_model("Detic_LCOCOI21k_CLIP_SwinB")


def test_ambiguous_title_lists_the_rows():
    with pytest.raises(DeticError, match="ov-lvis/Box-Supervised_C2_R50_640_4x, lvis/Box-Supervised_C2_R50_640_4x"):
        find_row("Box-Supervised_C2_R50_640_4x")


def test_backbones_and_unpublished_stages():
    with pytest.raises(DeticError, match="is a backbone"):
        resolve_model("resnet50_miil_21k")
    assert find_asset("resnet50_miil_21k").url.endswith("/resnet50_miil_21k.pth")
    with pytest.raises(DeticError, match="never published; train it"):
        find_asset("BoxSup-C2_LCOCO_CLIP_R18_640b32_4x")


def test_zoo_weight_specs(mirror):
    spec = "zoo://swin_base_patch4_window7_224_22k"
    path = resolve_weights_spec(spec, mirror=mirror, progress=NullProgress())
    assert open(path, "rb").read() == b"backbone bytes"
    assert resolve_weights_spec("models/x.pth") == "models/x.pth" and resolve_weights_spec("") == ""


def test_row_names_are_accepted_by_find_row():
    for row in ROWS:
        assert find_row(row.name) == row
        assert find_row(row.stem).weights is row.weights
