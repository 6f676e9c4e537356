"""Softmax attention inside Swin windows, in the original's operations (scaled q @ k^T, plus the additive
bias, softmax, @ v), shared by the ordinary forward and the CPU inference fast path so both give the same
values, closer to the original's than `scaled_dot_product_attention` and as fast on CPU (benchmarks/README.md).
"""

from __future__ import annotations

import torch


def attend(qkv: torch.Tensor, heads: int, scale: float, bias: torch.Tensor) -> torch.Tensor:
    """Multi-head attention inside each window.

    qkv: (B * nW, N, 3 C) projected window tokens, laid out (3, heads, head_dim) along the last dim;
    bias: (1, heads, N, N) or (nW, heads, N, N) additive logits (relative position bias, plus the
    shifted-window mask), windows in the order of the batch, repeated over the B pictures.
    Returns the attention output (B * nW * N, C), tokens in the order of qkv, before the output projection.
    """
    bw, n, c3 = qkv.shape
    q, k, v = qkv.view(bw, n, 3, heads, c3 // (3 * heads)).permute(2, 0, 3, 1, 4).contiguous().unbind(0)
    scores = torch.matmul(q * scale, k.transpose(-2, -1))  # (B * nW, heads, N, N)
    if bias.shape[0] == 1 and bias.dtype == scores.dtype:
        scores += bias
    else:  # out of place: promotes half-precision logits to the bias's float32 under autocast, as the original
        scores = (scores.view(-1, bias.shape[0], heads, n, n) + bias).view(bw, heads, n, n)
    out = torch.matmul(scores.softmax(-1).to(v.dtype), v)  # (B * nW, heads, N, head_dim)
    return out.transpose(1, 2).reshape(bw * n, c3 // 3)
