from __future__ import annotations

import pytest

from detic_cli.config.loader import load_config, parse_override
from detic_cli.errors import DeticError


def test_every_original_config_loads(shared_dir):
    configs = sorted((shared_dir / "detic-reference" / "configs").glob("*.yaml"))
    assert len(configs) == 30
    for path in configs:
        cfg = load_config(path)
        assert cfg.MODEL.META_ARCHITECTURE in ("CustomRCNN", "DeformableDetr"), path


def test_base_inheritance_and_tuple_strings(shared_dir):
    path = shared_dir / "detic-reference/configs/Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml"
    cfg = load_config(path)
    assert cfg.MODEL.TIMM.BASE_NAME == "resnet18"  # from the file
    assert cfg.MODEL.CENTERNET.POST_NMS_TOPK_TEST == 256  # from its base
    assert cfg.DATASETS.TRAIN == ["lvis_v1_train+coco", "imagenet_lvis-22k"]  # "(...)" string parsed
    assert cfg.DATASETS.TEST == ["lvis_v1_val"]
    assert cfg.MODEL.ROI_BOX_HEAD.NORM_TEMP == 50.0  # untouched default


def test_overrides_are_typed():
    cfg = load_config(None, ["INPUT.MIN_SIZE_TEST=640", "SOLVER.BASE_LR=1e-4", "SOLVER.STEPS=(10,20)"])
    assert cfg.INPUT.MIN_SIZE_TEST == 640
    assert cfg.SOLVER.BASE_LR == pytest.approx(1e-4)
    assert cfg.SOLVER.STEPS == [10, 20]
    assert parse_override("MODEL.WEIGHTS=a/b.pth") == (["MODEL", "WEIGHTS"], "a/b.pth")


def test_unknown_key_suggests_closest(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("MODEL:\n  ROI_HEAD:\n    NUM_CLASSES: 3\n")
    with pytest.raises(DeticError, match=r"bad.yaml: unknown config key MODEL.ROI_HEAD; did you mean MODEL.ROI_HEADS"):
        load_config(bad)
    with pytest.raises(DeticError, match="did you mean INPUT.MIN_SIZE_TEST"):
        load_config(None, ["INPUT.MIN_SIZE_TES=3"])


def test_base_relative_to_declaring_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "base.yaml").write_text("INPUT:\n  MIN_SIZE_TEST: 512\n")
    (tmp_path / "sub" / "child.yaml").write_text('_BASE_: "../base.yaml"\nINPUT:\n  MAX_SIZE_TEST: 900\n')
    cfg = load_config(tmp_path / "sub" / "child.yaml")
    assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (512, 900)


def test_bad_values_are_clear(tmp_path):
    with pytest.raises(DeticError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(DeticError, match="cannot parse INPUT.MIN_SIZE_TEST=.abc. as int"):
        load_config(None, ["INPUT.MIN_SIZE_TEST=abc"])
