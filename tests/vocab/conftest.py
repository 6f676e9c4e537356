"""Fixtures for vocabulary tests: the parity CLIP checkpoint (made once per session) and its case."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def make_parity_clip(shared: Path, base: Path) -> Path:
    """`make_checkpoint.py clip --seed 0` into the session's base temp dir (once for all test dirs)."""
    out = base / "parity_clip_seed0.pt"
    if not out.is_file():
        tmp = out.with_suffix(".partial")
        subprocess.run([sys.executable, str(shared / "parity" / "make_checkpoint.py"), "clip", "--seed", "0",
                        "--out", str(tmp)], check=True, capture_output=True)
        tmp.replace(out)
    return out


@pytest.fixture(scope="session")
def parity_clip(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fp16 OpenAI-layout CLIP ViT-B/32 state dict with the parity weights of seed 0."""
    return make_parity_clip(shared_dir, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def clip_case(shared_dir: Path) -> tuple[list[str], np.ndarray]:
    """The visible parity case: names and the original tool's (C, 512) embeddings of "a " + name."""
    cases = shared_dir / "parity" / "cases"
    names = (cases / "clip_visible_names.txt").read_text(encoding="utf-8").splitlines()
    return names, np.load(cases / "clip_visible_expected.npy")


def assert_parity(actual: np.ndarray, expected: np.ndarray) -> None:
    """The acceptance tolerance: relative error < 1e-2 and every row's cosine > 0.9999."""
    assert actual.shape == expected.shape
    rel = np.abs(actual - expected).max() / np.abs(expected).max()
    cos = (actual * expected).sum(1) / np.linalg.norm(actual, axis=1) / np.linalg.norm(expected, axis=1)
    assert rel < 1e-2, rel
    assert cos.min() > 0.9999, cos.min()


@pytest.fixture
def assert_close_to_case():
    return assert_parity
