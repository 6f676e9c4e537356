"""Parameter groups and gradient clipping as Detic's custom solver and detectron2 build them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from detic_cli.engine.optim import (
    GradClip,
    clip_gradients,
    custom_param_groups,
    default_param_groups,
    make_optimizer,
)
from detic_cli.errors import DeticError


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.head = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.sampling_offsets = nn.Linear(4, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def _lookup(groups, model):
    """parameter name -> (lr, weight_decay or None)."""
    by_id = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for g in groups:
        for p in g["params"]:
            out[by_id[id(p)]] = (g["lr"], g.get("weight_decay"))
    return out


def test_custom_groups_multiply_backbone_and_custom_names():
    model = Toy()
    groups = custom_param_groups(model, base_lr=0.1, weight_decay=1e-4, backbone_multiplier=0.5,
                                 custom_multiplier=0.1, custom_names=["sampling_offsets"])
    got = _lookup(groups, model)
    assert "frozen.weight" not in got  # no gradient, no group
    assert got["backbone.0.weight"] == pytest.approx((0.05, 1e-4))
    assert got["backbone.1.weight"] == pytest.approx((0.05, 1e-4))  # custom solver: norms decay too
    assert got["head.0.bias"] == pytest.approx((0.1, 1e-4))
    assert got["sampling_offsets.weight"] == pytest.approx((0.1 * 0.1, 1e-4))
    assert len(groups) == 3  # merged by equal hyper-parameters
    assert sum(len(g["params"]) for g in groups) == 10


def test_custom_groups_for_adamw_leave_decay_to_the_optimizer():
    model = Toy()
    groups = custom_param_groups(model, base_lr=2e-4, weight_decay=None, backbone_multiplier=1.0)
    assert all("weight_decay" not in g for g in groups)
    opt = make_optimizer(groups, name="ADAMW", base_lr=2e-4, weight_decay=1e-4)
    assert isinstance(opt, torch.optim.AdamW)
    assert {g["weight_decay"] for g in opt.param_groups} == {1e-4}


def test_default_groups_norm_and_bias_overrides():
    model = Toy()
    groups = default_param_groups(model, base_lr=0.02, weight_decay=1e-4, weight_decay_norm=0.0,
                                  bias_lr_factor=2.0, weight_decay_bias=0.5)
    got = _lookup(groups, model)
    assert got["backbone.0.weight"] == pytest.approx((0.02, 1e-4))
    assert got["backbone.0.bias"] == pytest.approx((0.04, 0.5))
    assert got["backbone.1.weight"] == pytest.approx((0.02, 0.0))  # BatchNorm weight: norm decay
    assert got["backbone.1.bias"] == pytest.approx((0.04, 0.5))  # a bias: bias settings win
    assert got["head.1.weight"] == pytest.approx((0.02, 0.0))  # LayerNorm
    opt = make_optimizer(groups, name="SGD", base_lr=0.02, momentum=0.9, nesterov=True, weight_decay=1e-4)
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["nesterov"] is True


def test_default_groups_without_overrides_keep_one_group():
    groups = default_param_groups(Toy(), base_lr=0.02, weight_decay=1e-4)
    assert len(groups) == 1 and groups[0]["lr"] == 0.02


def test_unknown_optimizer_and_clip_type_are_errors():
    with pytest.raises(DeticError, match="SOLVER.OPTIMIZER"):
        make_optimizer(custom_param_groups(Toy(), base_lr=1.0, weight_decay=0.0), name="LAMB", base_lr=1.0)
    with pytest.raises(DeticError, match="CLIP_TYPE"):
        GradClip(kind="elementwise")
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(DeticError, match="no trainable parameters"):
        make_optimizer(custom_param_groups(frozen, base_lr=1.0, weight_decay=0.0), name="SGD", base_lr=1.0)


def _with_grads(values):
    params = [nn.Parameter(torch.zeros(len(v))) for v in values]
    for p, v in zip(params, values):
        p.grad = torch.tensor(v)
    return params, torch.optim.SGD(params, lr=1.0)


def test_clip_by_value_clamps_every_element():
    params, opt = _with_grads([[3.0, -0.5], [-4.0]])
    clip_gradients(opt, GradClip("value", 1.0))
    assert params[0].grad.tolist() == [1.0, -0.5] and params[1].grad.tolist() == [-1.0]


def test_clip_by_norm_is_per_parameter_and_full_model_is_global():
    params, opt = _with_grads([[3.0, 4.0], [0.3, 0.4]])
    clip_gradients(opt, GradClip("norm", 1.0, 2.0))
    assert params[0].grad.norm().item() == pytest.approx(1.0, rel=1e-5)
    assert params[1].grad.tolist() == pytest.approx([0.3, 0.4])  # already below 1: untouched
    params, opt = _with_grads([[3.0, 4.0], [0.0, 0.0]])
    clip_gradients(opt, GradClip("full_model", 0.5, 2.0))
    assert params[0].grad.tolist() == pytest.approx([0.3, 0.4], rel=1e-5)


def test_build_optimizer_from_the_recipes():
    from detic_cli.config import load_config
    from detic_cli.engine.build import build_grad_clip, build_optimizer
    from detic_cli.zoo.resolve import config_path

    c2 = load_config(config_path("BoxSup-C2_LCOCO_CLIP_R18_640b32_4x.yaml"))  # AdamW, custom solver, clip by value
    opt = build_optimizer(c2, Toy())
    assert isinstance(opt, torch.optim.AdamW) and len(opt.param_groups) == 1
    assert opt.param_groups[0]["lr"] == 1e-4 and opt.param_groups[0]["weight_decay"] == 1e-4
    assert build_grad_clip(c2) == GradClip("value", 1.0, 2.0)
    detr = load_config(config_path("BoxSup-DeformDETR_L_R50_4x.yaml"))  # backbone x0.1, offsets x0.1, full-model clip
    model = Toy()
    got = _lookup(build_optimizer(detr, model).param_groups, model)
    assert got["backbone.0.weight"][0] == pytest.approx(detr.SOLVER.BASE_LR * 0.1)
    assert got["sampling_offsets.bias"][0] == pytest.approx(detr.SOLVER.BASE_LR * 0.1)
    assert build_grad_clip(detr) == GradClip("full_model", 0.01, 2.0)
    detr.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 1.0  # Detic's full-model clipping ignores NORM_TYPE: always the 2-norm
    assert build_grad_clip(detr) == GradClip("full_model", 0.01, 2.0)
    c2.SOLVER.CLIP_GRADIENTS.CLIP_TYPE, c2.SOLVER.CLIP_GRADIENTS.NORM_TYPE = "norm", 1.0  # detectron2's reads it
    assert build_grad_clip(c2) == GradClip("norm", 1.0, 1.0)
    c4 = load_config(config_path("BoxSup_OVCOCO_CLIP_R50_1x.yaml"))  # detectron2's SGD groups
    opt = build_optimizer(c4, Toy())
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == c4.SOLVER.MOMENTUM
    c4.SOLVER.OPTIMIZER = "ADAMW"
    with pytest.raises(DeticError, match="USE_CUSTOM_SOLVER"):
        build_optimizer(c4, Toy())


def test_amp_and_loop_settings():
    from pathlib import Path

    from detic_cli.config import load_config
    from detic_cli.engine.build import amp_mode, output_dir, train_settings
    from detic_cli.zoo.resolve import config_path

    cfg = load_config(config_path("BoxSup-C2_LCOCO_CLIP_R18_640b32_4x.yaml"))  # FP16: true
    assert amp_mode(cfg, None, "cuda") == ("fp16", None)
    assert amp_mode(cfg, None, "cpu")[0] is None and "fp32" in amp_mode(cfg, None, "cpu")[1]
    assert amp_mode(cfg, "bf16", "cpu") == ("bf16", None) and amp_mode(cfg, "off", "cuda") == (None, None)
    with pytest.raises(DeticError, match="--amp fp8"):
        amp_mode(cfg, "fp8", "cuda")
    s = train_settings(cfg, world_size=8)
    assert (s.max_iter, s.stop_iter, s.ims_per_batch, s.seed) == (180000, 180000, 32, None)
    assert train_settings(cfg, max_iter_flag=10).stop_iter == 10
    with pytest.raises(DeticError, match="IMS_PER_BATCH 32"):
        train_settings(cfg, world_size=3)
    path = config_path("BoxSup-C2_LCOCO_CLIP_R18_640b32_4x.yaml")
    assert output_dir(cfg, path) == Path("output/Detic/BoxSup-C2_LCOCO_CLIP_R18_640b32_4x")
