"""Host memory reuse for CPU inference.

A detector's forward pass allocates and frees the same large tensors on every call (Swin-B's stage-1 window
tensors are 30-60 MB, C4's pooled regions ~100 MB). glibc's malloc serves blocks above its mmap threshold
(128 KB, adapting up to 32 MB) with fresh mappings and gives freed memory back to the kernel, so each call
page-faults (and the kernel zero-fills) those pages again: ~150k faults and 0.3-1.3 s of system time per call
on Swin-B, Deformable DETR and C4 (benchmarks/README.md). `keep_freed_blocks` raises the mmap and trim
thresholds so freed blocks stay in the heap and the next call reuses them, the way PyTorch's CUDA caching
allocator or jemalloc/tcmalloc keep GPU and host memory. Values are unchanged (only where memory comes from).

The price: the process keeps its peak heap instead of returning it between calls. Set `DETIC_HOST_MEMORY=system`
to keep glibc's defaults. Only on Linux with glibc; elsewhere a no-op.
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import lru_cache

from detic_cli.errors import DeticError

ENV_VAR = "DETIC_HOST_MEMORY"
# mallopt(3) parameters and the values set: blocks up to 1 GiB come from the heap, and the heap's free top is
# never trimmed (the largest value mallopt takes, an int).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = (1 << 31) - 1


def keep_freed_blocks() -> bool:
    """Asks glibc, once per process, to keep freed large blocks for reuse. Returns whether the setting is on
    (False with `DETIC_HOST_MEMORY=system`, off Linux/glibc, or where glibc refuses the values); any other
    `DETIC_HOST_MEMORY` value raises `DeticError`."""
    choice = os.environ.get(ENV_VAR, "").strip().lower() or "keep"
    if choice not in ("keep", "system"):
        raise DeticError(f"{ENV_VAR}={os.environ[ENV_VAR]!r}: expected 'keep' (the default) or 'system'")
    return choice == "keep" and sys.platform.startswith("linux") and _apply_mallopt()


@lru_cache(maxsize=1)
def _apply_mallopt() -> bool:
    """Sets the two thresholds through glibc's mallopt once; whether glibc took both."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (has `mallopt` and `gnu_get_libc_version`), else None."""
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded into the process, the C library's among them
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version")):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc
