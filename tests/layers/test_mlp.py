"""Row chunks of the chunked feed-forwards keep every GEMM at least MIN_GEMM_ROWS rows."""

from __future__ import annotations

from detic_cli.layers.mlp import MIN_GEMM_ROWS, row_chunks


def test_row_chunks_cover_every_row_once_and_join_a_short_tail():
    assert row_chunks(0, 64) == []
    assert row_chunks(100, 64) == [(0, 100)]  # a 36-row tail joins the first chunk
    assert row_chunks(128, 64) == [(0, 64), (64, 128)]
    chunks = row_chunks(5000, 1024)
    assert chunks[0] == (0, 1024) and chunks[-1] == (4096, 5000)
    assert [b for _, b in chunks[:-1]] == [a for a, _ in chunks[1:]]
    assert all(b - a >= MIN_GEMM_ROWS for a, b in row_chunks(4100, 1024))
