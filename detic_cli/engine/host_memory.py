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
# mallopt(3) parameters and the values set: blocks up to 1 GiB come from the heap (glibc before ~2.35 takes at
# most 32 MiB, tried next), and the heap's free top is never trimmed (the largest value mallopt takes, an int).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLDS = (1 << 30, 32 << 20)
TRIM_THRESHOLD = (1 << 31) - 1
# The user's own malloc tuning, which this leaves alone.
USER_TUNING = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def keep_freed_blocks() -> bool:
    """Asks glibc, once per process, to keep freed large blocks for reuse. Returns whether this call asks for
    it: False with `DETIC_HOST_MEMORY=system`, off Linux/glibc, where the user tunes malloc already
    (`MALLOC_*_` variables or `glibc.malloc` tunables), or where glibc refuses the values. A setting once made
    stays for the process. Any other `DETIC_HOST_MEMORY` value raises `DeticError`.

    Blocks allocated by threads other than the main one come from glibc's per-thread arenas, which still map
    blocks above 64 MB afresh (e.g. `detic serve`'s batching thread): there the saving is smaller."""
    choice = os.environ.get(ENV_VAR, "").strip().lower() or "keep"
    if choice not in ("keep", "system"):
        raise DeticError(f"{ENV_VAR}={os.environ[ENV_VAR]!r}: expected 'keep' (the default) or 'system'")
    user_tuned = any(v in os.environ for v in USER_TUNING) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")
    return choice == "keep" and not user_tuned and sys.platform.startswith("linux") and _apply_mallopt()


@lru_cache(maxsize=1)
def _apply_mallopt() -> bool:
    """Sets the two thresholds through glibc's mallopt once, each on its own; whether glibc took both."""
    libc = _glibc()
    if libc is None:
        return False
    mmap = any(libc.mallopt(M_MMAP_THRESHOLD, value) for value in MMAP_THRESHOLDS)  # stops at the first taken
    return bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and mmap


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
