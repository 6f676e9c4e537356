"""The R18 parity detector, loaded once per module, for the API tests."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import SHARED

CASE = "parity/cases/r18_astronaut.json"
CONFIGS = "detic-reference/configs"
SMALL = ("INPUT.MIN_SIZE_TEST=320", "INPUT.MAX_SIZE_TEST=512")  # quicker where exactness vs the case is not asked


@pytest.fixture(scope="module")
def r18(shared_dir, parity_checkpoint):
    """(case dict, config path, weights path, vocabulary .npy path, class names) of the R18 parity case."""
    case = json.loads((SHARED / CASE).read_text())
    names = [f"class_{i}" for i in range(len(np.load(SHARED / case["vocab"])))]
    return case, SHARED / CONFIGS / case["config"], parity_checkpoint(case["config"], case["seed"]), \
        SHARED / case["vocab"], names


@pytest.fixture(scope="module")
def small_detector(r18):
    """The R18 parity detector at a reduced input size, with region embeddings."""
    from detic_cli import Detector

    _, config, weights, vocab, _ = r18
    return Detector(config=config, weights=weights, vocab=str(vocab), device="cpu", embeddings=True,
                    overrides=SMALL)


@pytest.fixture(scope="module")
def astronaut(shared_dir):
    return str(shared_dir / "parity/images/astronaut.jpg")
