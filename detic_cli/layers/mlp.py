"""The transformer-style feed-forward block shared by Swin and ConvNeXt."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

# Tokens per chunk in `Mlp.apply_in_chunks`: a chunk's hidden activations (4 C wide) stay in cache between fc1,
# GELU and fc2 (Swin-B stage 0 at 800 x 800, 40000 x 128 tokens: 206 -> 162 ms per MLP; benchmarks/README.md).
# A multiple of 64 rows: chunks starting at multiples of 64 rows gave MKL's GEMM the whole tensor's results
# (measured), chunks of e.g. 37 rows did not (rounding differences).
MLP_CHUNK = 4096
# Fewest rows MKL's GEMM computes with its ordinary kernel: it takes other code paths for a few rows (here
# 1-11 rows, multiples of 4 aside), which round differently. Row-subset GEMMs stay above this.
MIN_GEMM_ROWS = 64


def row_chunks(total: int, chunk: int) -> list[tuple[int, int]]:
    """(start, stop) of consecutive chunks of `chunk` rows (a multiple of 64) covering `total` rows; a last
    chunk shorter than `MIN_GEMM_ROWS` joins the one before it, so every GEMM over a chunk keeps MKL's
    ordinary kernel (the values of one GEMM over all rows)."""
    bounds = [*range(0, total, chunk), total]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < MIN_GEMM_ROWS:
        del bounds[-2]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


class Mlp(nn.Module):
    """Linear (`fc1`) -> exact GELU -> Linear (`fc2`) over the last dim (channels-last): (..., dim) -> same."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))

    def apply_in_chunks(self, rows: torch.Tensor, write: Callable[[torch.Tensor, torch.Tensor], object],
                        norm: nn.Module | None = None) -> None:
        """Inference only (no gradient): for each chunk of `MLP_CHUNK` rows (the last one up to
        `MLP_CHUNK + MIN_GEMM_ROWS - 1`) of `rows` (T, dim), call
        `write(part, mlp(norm(part)))`, where `part` is that chunk's view of `rows`. Per row, the same
        operations as `forward` (GELU in place), so the same values; chunks keep the hidden activations in cache.
        """
        for start, stop in row_chunks(rows.shape[0], MLP_CHUNK):
            part = rows[start:stop]
            hidden = self.fc1(norm(part) if norm is not None else part)
            torch.ops.aten.gelu_(hidden, approximate=self.act.approximate)
            write(part, self.fc2(hidden))
