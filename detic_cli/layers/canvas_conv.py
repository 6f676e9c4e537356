"""3x3 convolutions of many small maps (ROI features) as ONE Winograd convolution over a tiled canvas.

NNPACK's Winograd kernel computes 6x6 output tiles: run on a batch of 7x7 maps it wastes most of each second
tile. Laid out side by side on one large image (a "canvas"), the maps share the tiles. Neighbouring maps are
separated by one zero row / column, which is exactly the zero padding each map would see on its own, so
the convolution of the canvas, read back at the maps' places, is the padded 3x3 convolution of every map.
The canvas' own border is NNPACK's padding.

Canvas of maps of side S laid out `cols` per row: cell (i, j) starts at pixel (i * (S + 1), j * (S + 1));
the canvas is (rows * (S + 1) - 1) x (cols * (S + 1) - 1). Unused cells of the last row stay zero.

Layouts: "channel-major" (C, R, S, S) tensors (the whole batch of one channel contiguous) pack and unpack
with short contiguous runs and are what the C4 res5 head uses between its 1x1 GEMMs (an (R, C, S, S) batch
is `x.transpose(0, 1)`). The rounding is Winograd's (~1e-6 relative, as `fast_conv.conv3x3`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from detic_cli.layers.fast_conv import fast_path_allowed, nnpack_ready

__all__ = ["CanvasGrid", "canvas_conv3x3_cm", "canvas_ready"]

MAX_MAPS = 1024  # maps per canvas: bounds the canvas (and NNPACK's buffers) for large ROI batches


@dataclass(frozen=True)
class CanvasGrid:
    """Where `count` maps of side `size` lie on one canvas: `cols` per row, `rows` rows, pitch `size + 1`."""

    count: int
    size: int

    @property
    def cols(self) -> int:
        return math.ceil(math.sqrt(self.count))

    @property
    def rows(self) -> int:
        return math.ceil(self.count / self.cols)

    @property
    def pitch(self) -> int:
        return self.size + 1

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the canvas in pixels."""
        return self.rows * self.pitch - 1, self.cols * self.pitch - 1

    def cells(self, canvas: torch.Tensor) -> torch.Tensor:
        """(C, H, W) contiguous canvas -> (C, rows, cols, S, S) view of the cells (writable)."""
        c, h, w = canvas.shape
        p, s = self.pitch, self.size
        return canvas.as_strided((c, self.rows, self.cols, s, s), (h * w, p * w, p, w, 1), canvas.storage_offset())

    def pack(self, canvas: torch.Tensor, maps: torch.Tensor, relu: bool = False) -> None:
        """Write channel-major `maps` (C, count, S, S) into their cells of `canvas` (C, H, W), ReLU'd if `relu`."""
        if relu:
            self._split(self.cells(canvas), maps, lambda cell, src: torch.clamp_min(src, 0.0, out=cell))
        else:
            self._split(self.cells(canvas), maps, lambda cell, src: cell.copy_(src))

    def unpack(self, canvas: torch.Tensor, out: torch.Tensor, relu: bool = False) -> torch.Tensor:
        """Read the cells of `canvas` (C, H, W) into channel-major `out` (C, count, S, S), ReLU'd if `relu`."""
        if relu:
            self._split(self.cells(canvas), out, lambda cell, dst: torch.clamp_min(cell, 0.0, out=dst))
        else:
            self._split(self.cells(canvas), out, lambda cell, dst: dst.copy_(cell))
        return out

    def _split(self, cells: torch.Tensor, maps: torch.Tensor, copy) -> None:
        """Apply `copy(cell_view, maps_view)` to the full rows of the grid, then to the last partial row."""
        full, rest = divmod(self.count, self.cols)
        if full:
            copy(cells[:, :full], maps[:, :full * self.cols].unflatten(1, (full, self.cols)))
        if rest:
            copy(cells[:, full, :rest], maps[:, full * self.cols:])


def canvas_ready(x: torch.Tensor) -> bool:
    """The canvas path applies to `x`: CPU float32 inference (`fast_path_allowed`) with NNPACK built in."""
    return fast_path_allowed(x) and nnpack_ready()


def canvas_conv3x3_cm(maps: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, relu: bool = False,
                      relu_input: bool = False, max_maps: int = MAX_MAPS, canvases: dict | None = None) -> torch.Tensor:
    """3x3, stride-1, padding-1 convolution (+ ReLU if `relu`) of channel-major maps (ReLU'd first if
    `relu_input`, as they are copied onto the canvas) through canvases.

    maps: (C, R, S, S) float32 (any strides); weight: (C_out, C, 3, 3) contiguous; bias: (C_out,).
    Returns (C_out, R, S, S) contiguous. Call only where `canvas_ready(maps)`: the canvases go through
    `torch._nnpack_spatial_convolution`. At most `max_maps` maps share one canvas (in balanced chunks).
    `canvases`: a dict kept by the caller across calls (e.g. the convolutions of one forward) so the zeroed
    canvases are allocated once; only cells are ever written, so separators stay zero, and a cell left
    over from a larger batch cannot reach its neighbours' outputs (it is fenced by zeros too).
    """
    c, r, s, _ = maps.shape
    out = maps.new_empty(weight.shape[0], r, s, s)
    chunks = max(1, math.ceil(r / max_maps))
    step = math.ceil(r / chunks) if r else 1
    canvases = {} if canvases is None else canvases
    for start in range(0, r, step):
        grid = CanvasGrid(min(step, r - start), s)
        key = (c, *grid.shape)
        canvas = canvases.get(key)
        if canvas is None or canvas.dtype != maps.dtype or canvas.device != maps.device:
            canvas = canvases[key] = maps.new_zeros(key)
        grid.pack(canvas, maps[:, start:start + grid.count], relu=relu_input)
        result = torch._nnpack_spatial_convolution(canvas[None], weight, bias, [1, 1])[0]
        grid.unpack(result, out[:, start:start + grid.count], relu=relu)
    return out
