"""The canvas convolution equals F.conv2d(padding=1) on batches of small maps, and falls back under gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from detic_cli.layers.canvas_conv import CanvasGrid, canvas_conv3x3_cm, canvas_ready
from detic_cli.layers.fast_conv import nnpack_ready

needs_nnpack = pytest.mark.skipif(not nnpack_ready(), reason="torch built without NNPACK")


def _inputs(count: int, size: int, channels: int, out_channels: int = 5, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(count, channels, size, size, generator=gen)
    weight = torch.randn(out_channels, channels, 3, 3, generator=gen) / (9 * channels) ** 0.5
    return x, weight, torch.randn(out_channels, generator=gen)


def test_grid_geometry_and_zero_separators():
    grid = CanvasGrid(1000, 7)
    assert (grid.cols, grid.rows, grid.shape) == (32, 32, (255, 255))
    small = CanvasGrid(5, 2)  # 3 per row, 2 rows: canvas 5 x 8
    canvas = torch.zeros(1, *small.shape)
    small.pack(canvas, torch.arange(1.0, 21.0).view(1, 5, 2, 2))
    expected = torch.tensor([[1, 2, 0, 5, 6, 0, 9, 10],
                             [3, 4, 0, 7, 8, 0, 11, 12],
                             [0, 0, 0, 0, 0, 0, 0, 0],
                             [13, 14, 0, 17, 18, 0, 0, 0],
                             [15, 16, 0, 19, 20, 0, 0, 0]], dtype=torch.float32)
    assert torch.equal(canvas[0], expected)
    out = torch.empty(1, 5, 2, 2)
    assert torch.equal(small.unpack(canvas, out), torch.arange(1.0, 21.0).view(1, 5, 2, 2))


@needs_nnpack
@pytest.mark.parametrize("count,size,channels", [(1, 7, 4), (5, 7, 3), (13, 5, 2), (6, 14, 3)])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("relu_input", [False, True])
def test_equals_conv2d(count, size, channels, relu, relu_input):
    x, weight, bias = _inputs(count, size, channels)
    with torch.no_grad():
        expected = F.conv2d(x.relu() if relu_input else x, weight, bias, padding=1)
        got = canvas_conv3x3_cm(x.transpose(0, 1), weight, bias, relu=relu, relu_input=relu_input).transpose(0, 1)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected.relu() if relu else expected, rtol=1e-4, atol=1e-4)


@needs_nnpack
def test_chunks_and_reused_canvases_with_stale_cells():
    """Chunks of at most `max_maps` maps; a canvas reused for fewer maps keeps old cells, fenced by zeros."""
    x, weight, bias = _inputs(11, 6, 3, seed=1)
    canvases: dict = {}
    with torch.no_grad():
        full = canvas_conv3x3_cm(x.transpose(0, 1), weight, bias, max_maps=4, canvases=canvases)
        assert len(canvases) == 1  # 11 maps in chunks of 4, 4, 3: one 2 x 2 grid shared by all three
        fewer = canvas_conv3x3_cm(x[:7].transpose(0, 1), weight, bias, max_maps=4, canvases=canvases)
    expected = F.conv2d(x, weight, bias, padding=1).transpose(0, 1)
    torch.testing.assert_close(full, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fewer, expected[:, :7], rtol=1e-4, atol=1e-4)


def test_only_gradient_free_cpu_float32_takes_the_canvas():
    x = torch.randn(2, 3, 7, 7)
    with torch.no_grad():
        assert canvas_ready(x) == torch.backends.nnpack.is_available()
        assert not canvas_ready(x.double())
    assert not canvas_ready(x)  # gradient recorded: the ordinary convolution
