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


# Measured against the case (tools/dump_clip_features.py's float32 output, rows of norm ~24, |max| 4.48):
# relative 6.4e-7 (9.1e-7 at batch size 1, 7.9e-7 for averaged synonyms); 1 - cosine 3.5e-13 in float64.
REL_TOL = 1e-5
COS_TOL = 1e-7


def assert_parity(actual: np.ndarray, expected: np.ndarray, float16: bool = False) -> None:
    """(C, D) embeddings against the original tool's: max |actual - expected| < 1e-5 * max |expected| and every
    row's cosine (in float64) > 1 - 1e-7. `float16`: `actual` is a float16 file, each entry the float32 result
    rounded to nearest, so half a float16 step at that entry is allowed on top."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == (np.float16 if float16 else np.float32), actual.dtype
    got, want = actual.astype(np.float64), expected.astype(np.float64)
    scale = np.abs(want).max()
    bound = REL_TOL * scale + (np.spacing(np.abs(actual)).astype(np.float64) / 2 if float16 else 0.0)
    err = np.abs(got - want)
    assert (err <= bound).all(), f"relative error {err.max() / scale:.3g} (allowed {REL_TOL:g})"
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() > 1 - COS_TOL, f"1 - cosine {1 - cos.min():.3g}"


@pytest.fixture
def assert_close_to_case():
    return assert_parity
