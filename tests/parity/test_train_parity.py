"""One training step of the original Detic (../shared/parity/train_cases, format in its README.md) reproduced:
every loss term and gradient-group norm of the training forward, then the optimizer step (parameter groups,
schedule, clipping) taken through the trainer `detic train` runs, and the losses after it.

More case folders (e.g. made with ../shared/reference/train_ref.py) run through the same test when listed in
DETIC_TRAIN_CASES (paths separated by os.pathsep).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import SHARED

CASES = SHARED / "parity" / "train_cases"
LOSS_RTOL, LOSS_ATOL = 1e-5, 1e-6
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-6
SOLVER_RTOL = 1e-6
UPDATE_RTOL, UPDATE_ATOL = 1e-4, 1e-9
AFTER_RTOL, AFTER_ATOL = 1e-4, 1e-6

# Our loss name (pattern) -> the original's: terms mapped to one name are summed. The original adds Detic's
# caption loss into its image-label term, `image_loss[_stageK]`; other names are the original's already.
LOSS_NAME_MAP = (
    (r"loss_image(_stage\d+)?", r"image_loss\1"),
    (r"loss_caption(_stage\d+)?", r"image_loss\1"),
)


def _case_dirs() -> list[Path]:
    found = sorted(p for p in CASES.iterdir() if (p / "case.json").is_file()) if CASES.is_dir() else []
    extra = [Path(p) for p in os.environ.get("DETIC_TRAIN_CASES", "").split(os.pathsep) if p.strip()]
    return found + extra


def _params():
    dirs = _case_dirs()
    if not dirs:
        return [pytest.param(None, id="no-cases",
                             marks=pytest.mark.skip(reason=f"{CASES} not found: ../shared is absent"))]
    return [pytest.param(d, id=d.name) for d in dirs]


def original_names(losses: dict[str, float]) -> dict[str, float]:
    """Our loss terms under the original's names (mapped terms summed); `total_loss` left out."""
    out: dict[str, float] = {}
    for name, value in losses.items():
        if name == "total_loss":
            continue
        mapped = next((re.sub(pat, repl, name) for pat, repl in LOSS_NAME_MAP if re.fullmatch(pat, name)), name)
        out[mapped] = out.get(mapped, 0.0) + value
    return out


def _close(ours: float, ref: float, rtol: float, atol: float) -> bool:
    return abs(ours - ref) <= max(rtol * abs(ref), atol)


def _table(title: str, rows: list[tuple[str, float | None, float | None]], rtol: float, atol: float) -> list[str]:
    """Formatted comparison lines and the names of the mismatched rows, printed on failure."""
    lines, bad = [f"{title}: term, reference, ours, relative difference"], []
    for name, ref, ours in rows:
        if ref is None or ours is None:
            lines.append(f"  {name:48s} {ref!s:>16} {ours!s:>16}   MISSING")
            bad.append(name)
            continue
        rel = abs(ours - ref) / abs(ref) if ref else abs(ours - ref)
        ok = _close(ours, ref, rtol, atol)
        lines.append(f"  {name:48s} {ref:16.9g} {ours:16.9g} {rel:10.2e}{'' if ok else '   MISMATCH'}")
        if not ok:
            bad.append(name)
    return lines, bad


def _compare(title: str, expected: dict[str, float], ours: dict[str, float], rtol: float, atol: float,
             extra_must_be_zero: bool = False) -> None:
    names = list(expected) + [k for k in ours if k not in expected]
    rows = []
    for name in names:
        ref = expected.get(name)
        if ref is None and extra_must_be_zero and abs(ours[name]) <= atol:
            continue  # an additional term of ours is fine when it is 0
        rows.append((name, ref, ours.get(name)))
    lines, bad = _table(title, rows, rtol, atol)
    print("\n".join(lines))
    assert not bad, f"{title}: {bad} differ from the original\n" + "\n".join(lines)


# --- building the case as `detic train` does ------------------------------------------------------------------
def _parity_module():
    spec = importlib.util.spec_from_file_location("parity_weights", SHARED / "parity" / "parity_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(case: dict, folder: Path):
    from detic_cli.config import load_config

    files = [f"{key}={(folder / name).resolve()}" for key, name in case.get("file_overrides", {}).items()]
    return load_config(SHARED / "detic-reference" / "configs" / case["config"], list(case["overrides"]) + files)


def _weights(case: dict) -> dict[str, torch.Tensor]:
    manifests = json.loads((SHARED / "parity" / "manifests.json").read_text())
    state = _parity_module().parity_state_dict(manifests[case["config"]], case["weights"]["seed"])
    for key, factor in case["weights"].get("weight_scale", {}).items():
        assert key in state, f"weight_scale names {key}, which the checkpoint lacks"
        state[key] = state[key] * factor
    return state


def _drop_path_off(model: torch.nn.Module, case: dict) -> None:
    """`stochastic_depth: off`: each block's stochastic-depth rate as built must be the original's (whose
    rate-0 blocks have no DropPath module); then every rate is set to 0."""
    if case.get("stochastic_depth") != "off":
        return
    blocks = {name: m for name, m in model.named_modules() if hasattr(m, "drop_path_rate")}
    expected = case.get("reference_details", {}).get("drop_path_rates", {})
    assert blocks and expected, "stochastic_depth off: no drop-path rates to compare"
    by_name = {name.removesuffix(".drop_path"): rate for name, rate in expected.items()}
    if set(by_name) <= set(blocks):
        ours = {name: float(m.drop_path_rate) for name, m in blocks.items()}
        np.testing.assert_allclose([ours[n] for n in by_name], list(by_name.values()), rtol=1e-6, atol=1e-9)
        assert all(ours[n] == 0.0 for n in set(ours) - set(by_name)), "a block without DropPath has a rate"
    else:  # names differ: the schedule of the nonzero rates in module order
        ours_nonzero = [float(m.drop_path_rate) for m in blocks.values() if m.drop_path_rate > 0]
        np.testing.assert_allclose(ours_nonzero, [v for v in expected.values() if v > 0], rtol=1e-6, atol=1e-9)
    for module in blocks.values():
        module.drop_path_rate = 0.0


def _trainer(case: dict, folder: Path, out: Path):
    """The model (parity weights loaded as an official checkpoint), optimizer, schedule and clipping of
    `detic train`, in a Trainer like the one the command runs."""
    from detic_cli.checkpoint.load import load_state_dict
    from detic_cli.engine.build import amp_mode
    from detic_cli.engine.train_inputs import load_classifier
    from detic_cli.engine.train_setup import build_train_parts
    from detic_cli.engine.trainer import Trainer

    cfg = _config(case, folder)
    amp, _ = amp_mode(cfg, None, "cpu")
    parts = build_train_parts(cfg, device=torch.device("cpu"), embeddings=load_classifier(cfg))
    load_state_dict(parts.model, _weights(case), f"parity weights of {case['config']}")
    _drop_path_off(parts.model, case)
    trainer = Trainer(model=parts.model, optimizer=parts.optimizer, scheduler=parts.scheduler,
                      make_data=lambda start, seed: iter(()), max_iter=cfg.SOLVER.MAX_ITER,
                      output_dir=out, device=torch.device("cpu"), amp=amp, clip=parts.clip,
                      checkpoint_period=0, tensorboard=False)
    return cfg, trainer


def _batch(case: dict, folder: Path, cfg) -> list[dict]:
    """The case's mapped batch in the training contract, masks in the form the mapper gives for the config."""
    from detic_cli.data.geometry import Transform
    from detic_cli.data.masks import instance_masks
    from detic_cli.structures import Boxes, Instances

    out = []
    for image, element in zip(case["images"], case["batch"], strict=True):
        rgb = np.asarray(Image.open(folder / image["file"]).convert("RGB"))
        pixels = rgb[:, :, ::-1] if case["input_format"] == "BGR" else rgb
        h, w = pixels.shape[:2]
        fields = {"gt_boxes": Boxes(torch.tensor(element.get("gt_boxes", []), dtype=torch.float32).reshape(-1, 4)),
                  "gt_classes": torch.tensor(element.get("gt_classes", []), dtype=torch.int64)}
        if cfg.MODEL.MASK_ON and element.get("gt_polygons"):
            fields["gt_masks"] = instance_masks(element["gt_polygons"], Transform(), h, w, h, w,
                                                str(cfg.INPUT.MASK_FORMAT))
        item = {"image": torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))), "height": h,
                "width": w, "instances": Instances((h, w), **fields), "ann_type": element.get("ann_type", "box"),
                "pos_category_ids": list(element.get("pos_category_ids", [])),
                "dataset_source": element.get("dataset_source", 0)}
        if "captions" in element:
            item["captions"] = list(element["captions"])
        out.append(item)
    return out


# --- measuring -------------------------------------------------------------------------------------------------
def group_norms(model: torch.nn.Module, groups: list, values: dict[int, torch.Tensor | None]) -> dict[str, float]:
    """L2 norm per group of `values` (by parameter id; None counts 0): each distinct parameter in the first
    group one of its names starts with a prefix of, else `other`; `all` over every parameter (float64)."""
    names: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), []).append(name)
    acc = {g: 0.0 for g, _ in groups} | {"other": 0.0, "all": 0.0}
    for pid, pnames in names.items():
        group = next((g for g, prefixes in groups if any(n.startswith(tuple(prefixes)) for n in pnames)), "other")
        value = values.get(pid)
        sq = float(value.double().pow(2).sum()) if value is not None else 0.0
        acc[group] += sq
        acc["all"] += sq
    return {g: math.sqrt(v) for g, v in acc.items()}


def _forward(trainer, batch: list[dict], seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    with torch.no_grad():
        losses = trainer.model(batch)
    return original_names({k: float(v) for k, v in losses.items()})


def _check_solver(case: dict, cfg, trainer) -> None:
    """Per-parameter lr / weight decay of the optimizer as built, and the schedule's multipliers."""
    solver, optimizer = case["solver"], trainer.optimizer
    first: dict[int, str] = {}
    for name, param in trainer.model.named_parameters(remove_duplicate=False):
        first.setdefault(id(param), name)
    ours = {}
    for base_lr, group in zip(trainer.scheduler.base_lrs, optimizer.param_groups, strict=True):
        for param in group["params"]:
            ours[first[id(param)]] = (base_lr, group.get("weight_decay", optimizer.defaults.get("weight_decay")))
    assert type(optimizer).__name__.lower() == solver["optimizer"].lower()
    for name, (lr, wd) in solver["params"].items():
        assert name in ours, f"{name} trains in the original but not in our optimizer"
        wd = solver["defaults"].get("weight_decay") if wd is None else wd
        assert ours[name][0] == pytest.approx(lr, rel=SOLVER_RTOL), f"lr of {name}"
        assert ours[name][1] == pytest.approx(wd, rel=SOLVER_RTOL), f"weight decay of {name}"
    untrained = set(ours) - set(solver["params"])
    assert not untrained, f"our optimizer trains parameters the original does not: {sorted(untrained)[:5]}"
    for key, name in (("momentum", "momentum"), ("nesterov", "nesterov"), ("betas", "betas"), ("eps", "eps")):
        if key in solver["defaults"]:
            assert optimizer.defaults[name] == pytest.approx(solver["defaults"][key], rel=SOLVER_RTOL), key
    for iteration, multiplier in solver["lr_multiplier"].items():
        assert trainer.scheduler.factor(int(iteration)) == pytest.approx(multiplier, rel=SOLVER_RTOL), \
            f"LR multiplier at iteration {iteration}"
    clip = solver["clip_gradients"]
    assert (trainer.clip is not None) == clip["enabled"]
    if trainer.clip is not None:
        assert (trainer.clip.kind, trainer.clip.value) == (clip["type"], pytest.approx(clip["value"]))


def _check_without_gradient(model: torch.nn.Module, step: dict) -> None:
    """The trainable parameters that got no gradient (the optimizer skips them: no weight decay) are the
    original's, less those our model does not hold (the unused timm classifier)."""
    ours = {name for name, p in model.named_parameters() if p.requires_grad and p.grad is None}
    held = {name for name, _ in model.named_parameters()}
    expected = {name for name in step["trainable_without_gradient"] if name in held}
    assert ours == expected, f"no gradient: only ours {sorted(ours - expected)[:6]}, " \
                             f"only the original's {sorted(expected - ours)[:6]}"


def _advance(trainer, iteration: int) -> None:
    """Put the schedule at `iteration`, as `detic train --resume` does from a checkpoint."""
    trainer.scheduler.load_state_dict({**trainer.scheduler.state_dict(), "last_iter": iteration})


@pytest.fixture
def _threads():
    """The case's thread count for the test only (summation order; the original ran with 2)."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize("folder", _params())
def test_training_step_matches_original(folder: Path, tmp_path: Path, _threads) -> None:
    case = json.loads((folder / "case.json").read_text())
    assert case["format"] == 1
    _threads(case.get("num_threads", 2))
    cfg, trainer = _trainer(case, folder, tmp_path)
    batch = _batch(case, folder, cfg)
    step = case.get("solver", {}).get("step")
    if step is not None:
        _advance(trainer, int(step["iteration"]))
    model = trainer.model
    model.train()
    before = {id(p): p.detach().clone() for p in model.parameters()}
    torch.manual_seed(case["torch_seed"])
    values = trainer.forward_backward(model, batch, int(step["iteration"]) if step else 0)
    expected = case["expected"]
    ours = original_names(values)
    _compare(f"{case['name']} losses", expected["losses"], ours, LOSS_RTOL, LOSS_ATOL, extra_must_be_zero=True)
    assert values["total_loss"] == pytest.approx(expected["total_loss"], rel=LOSS_RTOL, abs=LOSS_ATOL)
    grads = {id(p): p.grad for p in model.parameters()}
    _compare(f"{case['name']} gradient norms", expected["grad_norms"],
             group_norms(model, case["grad_groups"], grads), GRAD_RTOL, GRAD_ATOL)
    if "solver" not in case:
        return
    _check_solver(case, cfg, trainer)
    _check_without_gradient(trainer.model, step)
    lrs = sorted({float(g["lr"]) for g in trainer.optimizer.param_groups if g["params"]})
    np.testing.assert_allclose(lrs, sorted(set(step["lrs_at_iteration"])), rtol=SOLVER_RTOL)
    trainer.apply_step()
    updates = {id(p): (p.detach() - before[id(p)]) if p.requires_grad else None for p in model.parameters()}
    _compare(f"{case['name']} update norms", step["update_norms"],
             group_norms(model, case["grad_groups"], updates), UPDATE_RTOL, UPDATE_ATOL)
    trainer.optimizer.zero_grad(set_to_none=True)
    after = _forward(trainer, batch, case["torch_seed"])
    _compare(f"{case['name']} losses after the step", step["losses_after"], after, AFTER_RTOL, AFTER_ATOL,
             extra_must_be_zero=True)
