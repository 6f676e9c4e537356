"""What `detic train --config` starts from: MODEL.WEIGHTS `zoo://BACKBONE` converted, and MODEL.TIMM.PRETRAINED
with no MODEL.WEIGHTS taken from the zoo's copy of timm's ImageNet weights (as the original let timm load them)."""

from __future__ import annotations

import pytest
import torch
import torchvision

from detic_cli.checkpoint.safe_load import read_checkpoint
from detic_cli.config import load_config
from detic_cli.engine.backbone_weights import converted_asset
from detic_cli.engine.init_weights import train_init_weights
from detic_cli.errors import DeticError
from detic_cli.zoo import cache
from detic_cli.zoo.resolve import config_path, find_backbone

R18 = config_path("BoxSup-C2_LCOCO_CLIP_R18_640b32_4x.yaml")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """torchvision's resnet18-5c106cde.pth layout with random values."""
    folder = tmp_path_factory.mktemp("mirror")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), folder / "resnet18-5c106cde.pth")
    return str(folder)


def _converted() -> str:
    return str(cache.cached_path(converted_asset(find_backbone("resnet18"))))


def test_timm_pretrained_config_starts_from_the_zoo_backbone(mirror):
    path = train_init_weights(None, None, load_config(R18), mirror)
    assert str(path) == _converted()
    state = read_checkpoint(path)["model"]
    assert "backbone.bottom_up.base.layer4.1.conv2.weight" in state
    assert train_init_weights(None, None, load_config(R18, ["MODEL.TIMM.PRETRAINED=False"]), mirror) is None
    with pytest.raises(DeticError, match="no ImageNet weights for MODEL.TIMM.BASE_NAME resnet34; give them with "
                                         "--weights PTH"):
        train_init_weights(None, None, load_config(R18, ["MODEL.TIMM.BASE_NAME=resnet34"]), mirror)


def test_zoo_backbone_in_model_weights_is_converted(mirror, tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text(f"_BASE_: {R18}\nMODEL:\n  WEIGHTS: zoo://resnet18\n  TIMM:\n    PRETRAINED: false\n")
    assert str(train_init_weights(None, None, load_config(own), mirror)) == _converted()
    given = tmp_path / "given.pth"
    assert train_init_weights(None, given, load_config(own), mirror) == given  # --weights wins
