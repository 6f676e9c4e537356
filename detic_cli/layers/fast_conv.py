"""CPU inference convolutions: Winograd 3x3 convolutions (NNPACK) and a 2x2-stride-2 deconvolution as a GEMM.

Both are exact algorithms whose float32 rounding differs from oneDNN's direct convolution by ~1e-6 relative
(measured in benchmarks/README.md); they are used only where the caller allows it (no gradient, CPU, float32)
and fall back to the ordinary PyTorch operators everywhere else (training, CUDA, autocast, other shapes).
"""

from __future__ import annotations

from functools import cache, partial

import torch
from torch import nn


@cache
def nnpack_ready() -> bool:
    """Whether NNPACK is built in; asking also initialises it (its convolutions fail before that)."""
    return bool(torch.backends.nnpack.is_available())


def fast_path_allowed(x: torch.Tensor) -> bool:
    """The fast CPU kernels apply: float32 on the CPU, no gradient recorded, no CPU autocast, not tracing."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cpu") and not torch.jit.is_tracing()
            and not torch.onnx.is_in_onnx_export() and not torch.compiler.is_compiling())


def winograd_eligible(conv: nn.Conv2d) -> bool:
    """A 3x3, stride-1, padding-1, undilated, ungrouped convolution with zero padding."""
    return (tuple(conv.kernel_size) == (3, 3) and tuple(conv.stride) == (1, 1) and tuple(conv.padding) == (1, 1)
            and tuple(conv.dilation) == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros")


def conv3x3(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """`conv(x)` for a `winograd_eligible` conv: NNPACK's Winograd kernel where `fast_path_allowed` and
    `winograd_pays`, else the conv's own kernel (as a conv set up by `use_winograd`).

    x: (N, C, H, W) float32 -> (N, C_out, H, W). Winograd needs ~2.3x fewer multiplications than a direct
    3x3 convolution; on batches of ROI features (N > 1) it is ~2x faster than oneDNN on AVX2 CPUs.
    """
    return _winograd_conv_forward(conv, x, conv.weight, conv.bias)


# Below this many output positions (batch x height x width) oneDNN's direct convolution is as fast as NNPACK's
# Winograd on AVX2 or faster (256 -> 256 channels: 28x28 5.5 vs 5.4 ms, 14x14 4.6 vs 1.5, 7x7 4.1 vs 0.5;
# benchmarks/README.md), and it is the original's kernel: small maps (a mask head with < 6 ROIs) take it.
WINOGRAD_MIN_POSITIONS = 1024


def winograd_pays(x: torch.Tensor) -> bool:
    """NNPACK's Winograd is worth its transforms for this (N, C, H, W) input."""
    n, _, h, w = x.shape
    return n * h * w >= WINOGRAD_MIN_POSITIONS


def _winograd_conv_forward(conv: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor,
                           bias: torch.Tensor | None) -> torch.Tensor:
    """`conv._conv_forward` of a conv set up by `use_winograd`: NNPACK where allowed and `winograd_pays`, else
    the class's own."""
    if fast_path_allowed(x) and nnpack_ready() and winograd_pays(x):
        bias = bias if bias is not None else x.new_zeros(weight.shape[0])
        try:
            return torch._nnpack_spatial_convolution(x.contiguous(), weight, bias, [1, 1])
        except RuntimeError:  # NNPACK refuses some sizes (e.g. out of workspace): the direct convolution
            pass
    return type(conv)._conv_forward(conv, x, weight, bias)


def use_winograd(model: nn.Module) -> int:
    """In every submodule of `model` whose class sets `winograd_convolutions = True` (the heads after the
    FPN, whose results tolerate ~1e-6 relative rounding), make each `winograd_eligible` nn.Conv2d run through
    NNPACK's Winograd kernel where `fast_path_allowed`; returns how many. Weights, state dict and training are
    unchanged (with gradient the ordinary kernel runs); `restore_convolutions` undoes it. Idempotent."""
    convs = {id(m): m for part in model.modules() if getattr(type(part), "winograd_convolutions", False)
             for m in part.modules() if isinstance(m, nn.Conv2d) and winograd_eligible(m)}
    for conv in convs.values():
        if "_conv_forward" not in conv.__dict__:
            conv._conv_forward = partial(_winograd_conv_forward, conv)
    return len(convs)


def restore_convolutions(model: nn.Module) -> None:
    """Undo `use_winograd`: every convolution runs its class's kernel again."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.__dict__.pop("_conv_forward", None)


# ROIs per chunk in `deconv2x2_relu_pointwise`: a chunk's deconvolution output (4 x 14 x 14 x 4 x 256 floats,
# 3 MB, for the mask head) is still in cache when the 1x1 predictor reads it, instead of one 35 MB pass per step
# (179 mask-head ROIs: ~260 -> ~205 ms). Every chunk size gave the same values with MKL's GEMM (per ROI the same
# GEMM rows; measured, and checked bit for bit by the tests).
UPSAMPLE_CHUNK = 4


def deconv2x2_relu_pointwise(deconv: nn.ConvTranspose2d, predictor: nn.Conv2d, x: torch.Tensor,
                             rois_per_chunk: int = UPSAMPLE_CHUNK) -> torch.Tensor:
    """predictor(relu(deconv(x))) for a 2x2, stride-2 transposed convolution (its outputs do not overlap: one
    GEMM) and a 1x1 `predictor` (a second GEMM), over chunks of `rois_per_chunk` ROIs; oneDNN's deconvolution
    is ~2x slower on CPU. Inference only (no autograd bookkeeping is kept).

    x: (N, C, H, W) float32 -> (N, K, 2H, 2W), K = predictor.out_channels.
    """
    n, c, h, w = x.shape
    weight = deconv.weight.permute(0, 2, 3, 1).reshape(c, -1)  # (C, 2 * 2 * C_mid)
    bias = deconv.bias.repeat(4) if deconv.bias is not None else x.new_zeros(weight.shape[1])
    blocks = x.new_empty((n, h, w, 2, 2, predictor.out_channels))
    for start in range(0, n, rois_per_chunk):
        part = x[start:start + rois_per_chunk]
        hidden = torch.addmm(bias, part.permute(0, 2, 3, 1).reshape(-1, c), weight).relu_()
        blocks[start:start + len(part)] = pointwise(predictor, hidden.view(len(part), h, w, 2, 2, -1))
    return blocks_to_image(blocks)


def blocks_to_image(blocks: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 2, 2, K) blocks -> (N, K, 2H, 2W): block (i, j) of cell (y, x) is pixel (2y + i, 2x + j)."""
    n, h, w, _, _, k = blocks.shape
    return blocks.permute(0, 5, 1, 3, 2, 4).reshape(n, k, 2 * h, 2 * w)


def pointwise(conv: nn.Conv2d, blocks: torch.Tensor) -> torch.Tensor:
    """A 1x1 `conv` applied on the last (channel) axis of channels-last `blocks` (..., C) -> (..., C_out)."""
    weight = conv.weight.view(conv.out_channels, -1)
    out = blocks.reshape(-1, weight.shape[1]) @ weight.t()
    if conv.bias is not None:
        out += conv.bias
    return out.view(*blocks.shape[:-1], conv.out_channels)
