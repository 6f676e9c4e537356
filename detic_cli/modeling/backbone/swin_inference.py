"""CPU inference fast path of a Swin block: the window partition, cyclic shift and padding crop as one gather
each way, the relative position bias (plus the shifted-window mask) built once per shape, residual sums and
GELU in place. Same float operations as `SwinBlock.forward`, in the same order: the outputs are identical.

Used only where `fast_path_allowed` (CPU float32, no gradient, no autocast, not tracing) and the block is in
eval mode; training and export run the ordinary code. Weights are never modified: the cached bias is keyed on
the bias table's storage and version counter and is rebuilt when the table changes (e.g. an optimiser step
between two evaluations).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from detic_cli.modeling.backbone.swin import SwinBlock, WindowAttention


@lru_cache(maxsize=64)
def window_indices(h: int, w: int, win: int, shift: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat row indices for a (h, w) map zero-padded to window multiples (hp, wp), rolled by -shift on both axes.

    Returns (to_win, from_win): `padded.view(hp * wp, C)[to_win]` is the windows' tokens, (nH * nW * win * win),
    row-major windows as `to_windows(roll(padded))`; `tokens[from_win]` is the (h * w) map back in row-major
    order, rolled back by +shift and cropped to (h, w), as `roll(from_windows(tokens))[:h, :w]`. int64.
    """
    hp, wp = (h + win - 1) // win * win, (w + win - 1) // win * win
    rows = (torch.arange(hp) + shift) % hp  # window-frame row r reads padded row (r + shift) % hp
    cols = (torch.arange(wp) + shift) % wp
    flat = (rows[:, None] * wp + cols[None, :]).view(hp // win, win, wp // win, win)
    to_win = flat.permute(0, 2, 1, 3).reshape(-1)
    from_win = torch.empty_like(to_win)
    from_win[to_win] = torch.arange(to_win.numel())
    from_win = from_win.view(hp, wp)[:h, :w].reshape(-1)
    return to_win.to(device), from_win.to(device)


@lru_cache(maxsize=8)
def cached_window_mask(hp: int, wp: int, win: int, shift: int, device: torch.device) -> torch.Tensor:
    """`shifted_window_mask` (nW, win * win, win * win) of one padded shape, built once."""
    from detic_cli.modeling.backbone.swin import shifted_window_mask

    return shifted_window_mask(hp, wp, win, shift, device)


def attention_bias(attn: WindowAttention, hp: int, wp: int, shift: int, device: torch.device) -> torch.Tensor:
    """The additive attention bias of `attn` on a (hp, wp) padded map: (1, heads, N, N) without shift, else
    (nW, heads, N, N) with the shifted-window mask added, as `WindowAttention.forward` computes it. Cached on the
    module for one shape (Swin-B at 896 x 896 holds ~150 MB of them over its 24 blocks, the price of not summing
    bias and mask per call); rebuilt when the bias table changes (storage or version counter) or the shape does."""
    table = attn.relative_position_bias_table
    key = (table.data_ptr(), table._version, hp, wp, shift, device)
    cached = attn.__dict__.get("_fast_bias")
    if cached is not None and cached[0] == key:
        return cached[1]
    n = attn.window_size**2
    bias = table[attn.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)  # (heads, N, N)
    if shift == 0:
        full = bias.unsqueeze(0).contiguous()
    else:
        full = bias.unsqueeze(0) + cached_window_mask(hp, wp, attn.window_size, shift, device).unsqueeze(1)
    attn.__dict__["_fast_bias"] = (key, full)
    return full


def window_attention(attn: WindowAttention, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x: (B * nW, N, C) window tokens, bias from `attention_bias` -> (B * nW, N, C), as `attn(x, mask)`."""
    bw, n, c = x.shape
    qkv = attn.qkv(x).view(bw, n, 3, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4)
    if bias.shape[0] > 1 and bias.shape[0] != bw:
        bias = bias.repeat(bw // bias.shape[0], 1, 1, 1)
    out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=bias, scale=attn.scale)
    return attn.proj(out.transpose(1, 2).reshape(bw, n, c))


def block_forward(block: SwinBlock, x: torch.Tensor) -> torch.Tensor:
    """`block(x, mask)` for an eval-mode block where `fast_path_allowed`: x (B, H, W, C) -> (B, H, W, C)."""
    b, h, w, c = x.shape
    win, shift = block.window_size, block.shift
    hp, wp = (h + win - 1) // win * win, (w + win - 1) // win * win
    to_win, from_win = window_indices(h, w, win, shift, x.device)
    y = block.norm1(x)
    if (hp, wp) != (h, w):
        y = F.pad(y, (0, 0, 0, wp - w, 0, hp - h))
    tokens = y.reshape(b, hp * wp, c).index_select(1, to_win) if b > 1 else y.view(-1, c).index_select(0, to_win)
    bias = attention_bias(block.attn, hp, wp, shift, x.device)
    out = window_attention(block.attn, tokens.view(-1, win * win, c), bias).view(b, hp * wp, c)
    out = out.index_select(1, from_win) if b > 1 else out.view(-1, c).index_select(0, from_win)
    x = x + out.view(b, h, w, c)
    mlp = block.mlp
    hidden = mlp.fc1(block.norm2(x))
    torch.ops.aten.gelu_(hidden, approximate=mlp.act.approximate)
    return x.add_(mlp.fc2(hidden))
