"""Fixtures shared by the modeling tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """One intra-op thread for the training tests: steadier on a shared 2-core CPU, where spinning OpenMP
    threads slow every process down."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
