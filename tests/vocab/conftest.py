"""Vocabulary test fixtures: the visible CLIP parity case and its tolerance (checkpoint: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


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
