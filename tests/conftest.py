"""Shared fixtures: where ../shared lives, small synthetic images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DETIC_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        raise RuntimeError(f"{SHARED} not found: the parity material must sit beside the clone (or set DETIC_SHARED)")
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Keep every test's cache out of the user's DETIC_HOME."""
    home = tmp_path_factory.mktemp("detic_home")
    monkeypatch.setenv("DETIC_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield
