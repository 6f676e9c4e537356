"""Shared fixtures: where ../shared lives, small synthetic images."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DETIC_SHARED", REPO.parent / "shared"))
SHARED_MISSING = f"needs {SHARED}, which is not there: the parity material sits beside the clone (or set DETIC_SHARED)"


def shared_params(params: list) -> list:
    """`params` for a parametrize whose values are read from ../shared at collection time; where ../shared is
    absent, one case (id "no-shared") that is skipped with the reason, never an empty, silently passing set."""
    if SHARED.is_dir():
        return list(params)
    return [pytest.param(None, marks=pytest.mark.skip(reason=SHARED_MISSING), id="no-shared")]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (or $DETIC_SHARED); every test that asks for it is skipped, naming the path, where it is absent."""
    if not SHARED.is_dir():
        pytest.skip(SHARED_MISSING)
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Keep every test's cache out of the user's DETIC_HOME."""
    home = tmp_path_factory.mktemp("detic_home")
    monkeypatch.setenv("DETIC_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield


@pytest.fixture(scope="session")
def parity_checkpoint(shared_dir, tmp_path_factory):
    """Factory: path of a `make_checkpoint.py detector CONFIG --seed SEED` file, made once per session."""
    made: dict[tuple[str, int], Path] = {}
    folder = tmp_path_factory.mktemp("parity_weights")

    def make(config: str, seed: int = 0) -> Path:
        if (config, seed) not in made:
            out = folder / f"{Path(config).stem}_{seed}.pth"
            subprocess.run([sys.executable, str(shared_dir / "parity" / "make_checkpoint.py"), "detector", config,
                            "--seed", str(seed), "--out", str(out)], check=True, capture_output=True)
            made[(config, seed)] = out
        return made[(config, seed)]

    return make


class ParityKeys:
    """One part of an original config in the parity material: its manifest keys and shapes, and the tensors
    make_checkpoint.py writes for them (same generator, only the keys asked for). Keys are given and returned
    without `prefix` (e.g. "backbone.bottom_up.")."""

    def __init__(self, shared: Path) -> None:
        self.manifests = json.loads((shared / "parity" / "manifests.json").read_text())
        spec = importlib.util.spec_from_file_location("parity_weights", shared / "parity" / "parity_weights.py")
        self.module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.module)

    def manifest(self, config: str, prefix: str) -> dict[str, tuple[int, ...]]:
        return {k[len(prefix):]: tuple(v) for k, v in self.manifests[config].items() if k.startswith(prefix)}

    def weights(self, keys: dict[str, tuple[int, ...]], prefix: str, seed: int = 0) -> dict:
        full = self.module.parity_state_dict({prefix + k: list(s) for k, s in keys.items()}, seed)
        return {k[len(prefix):]: v for k, v in full.items()}


class OriginalChannelNorm(torch.nn.Module):
    """What the original's timm 0.5.4 LayerNorm2d computes on a channels-last input (every ConvNeXt stage
    output, so before each downsampling conv): the variance over the channels with Bessel's correction,
    where timm 1.x's LayerNorm2d uses the biased one. Wraps a timm 1.x norm to build the original's maths."""

    def __init__(self, norm: torch.nn.LayerNorm) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=1, keepdim=True, unbiased=True)
        y = (x - mean) / torch.sqrt(var + self.norm.eps)
        return y * self.norm.weight[:, None, None] + self.norm.bias[:, None, None]


@pytest.fixture(scope="session")
def parity_keys(shared_dir) -> ParityKeys:
    return ParityKeys(shared_dir)


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run `detic ARGS...` in-process through the real entry point; returns (exit code, stdout, stderr)."""
    from detic_cli.cli.app import main

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["detic", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture(scope="session")
def parity_clip(shared_dir, tmp_path_factory) -> Path:
    """`make_checkpoint.py clip --seed 0`: fp16 OpenAI-layout CLIP ViT-B/32 state dict, made once per session."""
    out = tmp_path_factory.getbasetemp() / "parity_clip_seed0.pt"
    if not out.is_file():
        tmp = out.with_suffix(".partial")
        subprocess.run([sys.executable, str(shared_dir / "parity" / "make_checkpoint.py"), "clip", "--seed", "0",
                        "--out", str(tmp)], check=True, capture_output=True)
        tmp.replace(out)
    return out


def pytest_collection_modifyitems(config, items):
    """`gpu` tests need a CUDA device: skipped, with the reason, where torch sees none."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none visible to torch)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
