"""CPU inference fast path of a Swin block, with the same float operations per value as `SwinBlock.forward`
(the outputs are identical) and less work:

- padding, cyclic shift and window partition as one cached-index gather each way, the padding tokens read
  from one extra table row; the gather into windows also lays q, k and v out heads first (3, heads, B, T,
  head_dim), so the attention's batched products need no permute copy, and q is scaled before it;
- where padding is a large share of the windows (e.g. 50 -> 56 tokens a side), `qkv` runs on the real tokens
  only: a zero padding token's projection is exactly the bias, so that row stands for all of them;
- `proj` after the reverse gather, on the real tokens only (it is per token);
- the relative position bias (plus the shifted-window mask) built once per shape;
- the MLP over chunks of tokens that stay in cache (per token, so the same values), GELU and sums in place.

Used only where `fast_path_allowed` (CPU float32, no gradient, no autocast, not tracing) and the block is in
eval mode; training and export run the ordinary code. Weights are never modified: the cached bias is keyed on
the bias table's storage and version counter and is rebuilt when the table changes (e.g. an optimiser step
between two evaluations).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import torch

from detic_cli.layers.mlp import MIN_GEMM_ROWS
from detic_cli.modeling.backbone.swin_attention import attend

if TYPE_CHECKING:
    from detic_cli.modeling.backbone.swin import SwinBlock, WindowAttention

# `qkv` before the window gather when padding tokens exceed this share of the real ones: the GEMM rows saved
# outweigh gathering 3 C instead of C columns.
QKV_FIRST_PADDING = 0.1
# Bytes of alignment that BLAS kernels may treat differently (AVX-512 vectors, cache lines; see heads_first_safe).
BLAS_ALIGNMENT = 64


@lru_cache(maxsize=64)
def window_rows(h: int, w: int, win: int, shift: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather indices between a (h, w) token map and its windows.

    The map is zero-padded to window multiples (hp, wp) and rolled by -shift on both axes, as the ordinary
    path does. Returns (to_win, from_win), int64:
    - to_win (hp * wp,): for each window token (row-major windows, row-major inside), its row in a table of
      h * w + 1 rows: the map row-major, then one row standing for every padding token;
    - from_win (h * w,): for each map token (row-major), its position among the window tokens.
    """
    hp, wp = (h + win - 1) // win * win, (w + win - 1) // win * win
    rows = (torch.arange(hp) + shift) % hp  # window-frame row r shows padded row (r + shift) % hp
    cols = (torch.arange(wp) + shift) % wp
    inside = (rows[:, None] < h) & (cols[None, :] < w)
    flat = torch.where(inside, rows[:, None] * w + cols[None, :], h * w)
    to_win = flat.view(hp // win, win, wp // win, win).permute(0, 2, 1, 3).reshape(-1)
    real = to_win < h * w
    from_win = torch.empty(h * w, dtype=torch.int64)
    from_win[to_win[real]] = torch.arange(to_win.numel())[real]
    return to_win.to(device), from_win.to(device)


@lru_cache(maxsize=8)
def cached_window_mask(hp: int, wp: int, win: int, shift: int, device: torch.device) -> torch.Tensor:
    """`shifted_window_mask` (nW, win * win, win * win) of one padded shape, built once."""
    from detic_cli.modeling.backbone.swin import shifted_window_mask

    return shifted_window_mask(hp, wp, win, shift, device)


def attention_bias(attn: WindowAttention, hp: int, wp: int, shift: int, device: torch.device) -> torch.Tensor:
    """The additive attention bias of `attn` on a (hp, wp) padded map: (1, heads, N, N) without shift, else
    (nW, heads, N, N) with the shifted-window mask added (`WindowAttention.position_bias`). Cached on the
    module for one shape (Swin-B at 896 x 896 holds ~150 MB of them over its 24 blocks, the price of not summing
    bias and mask per call); rebuilt when the bias table changes (storage or version counter) or the shape does."""
    table = attn.relative_position_bias_table
    key = (table.data_ptr(), table._version, hp, wp, shift, device)
    cached = attn.__dict__.get("_fast_bias")
    if cached is not None and cached[0] == key:
        return cached[1]
    mask = cached_window_mask(hp, wp, attn.window_size, shift, device) if shift else None
    full = attn.position_bias(mask).contiguous()
    attn.__dict__["_fast_bias"] = (key, full)
    return full


def heads_first_safe(n: int, head_dim: int, itemsize: int) -> bool:
    """Whether the heads-first attention (`attend_windows`) gives the original's values: each window's v and
    output matrix (n x head_dim) must start at the same alignment in its batch as in the original's window-major
    one, which holds when it spans whole multiples of `BLAS_ALIGNMENT` bytes (Swin's n = 49, head_dim = 32).
    Otherwise MKL's batched product can round a matrix differently at another offset (measured on AVX2 with
    head_dim 5-11 and 25- or 49-token windows)."""
    return n * head_dim * itemsize % BLAS_ALIGNMENT == 0


def window_qkv(attn: WindowAttention, y: torch.Tensor, to_win: torch.Tensor, padding: int,
               heads_first: bool) -> torch.Tensor:
    """Normalised tokens y (B, h * w, C) -> their qkv projections in window order; `to_win` from `window_rows`,
    `padding` = hp * wp - h * w padding tokens per picture (T = hp * wp window tokens). `heads_first`: q already
    scaled and laid out (3, heads, B, T, head_dim) for `attend_windows` (q is scaled before the gather, the same
    product per value on fewer rows, and the gather itself moves heads first); else (B, T, 3 C) for
    `swin_attention.attend`."""
    b, t, c = y.shape
    if padding > QKV_FIRST_PADDING * t and b * t >= MIN_GEMM_ROWS:
        table = _projected_with_bias_row(attn, y)  # (B, t + 1, 3 C); the last row is a zero token's projection
        if not heads_first:
            return _gather(table, to_win)
        table[..., :c].mul_(attn.scale)
        return table.view(b, t + 1, 3, attn.num_heads, -1).permute(2, 3, 0, 1, 4).index_select(3, to_win)
    table = torch.cat([y, y.new_zeros(b, 1, c)], dim=1) if padding else y
    qkv = attn.qkv(_gather(table, to_win))
    if not heads_first:
        return qkv
    qkv[..., :c].mul_(attn.scale)
    return qkv.view(b, qkv.shape[1], 3, attn.num_heads, -1).permute(2, 3, 0, 1, 4).contiguous()


def _projected_with_bias_row(attn: WindowAttention, y: torch.Tensor) -> torch.Tensor:
    """y (B, t, C) -> (B, t + 1, 3 C): `attn.qkv(y)` then one row of `attn.qkv.bias` per picture (a zero padding
    token projects to exactly the bias). One picture: the projection is written in place of a concatenation."""
    b, t, c = y.shape
    qkv = attn.qkv
    if b != 1:
        return torch.cat([qkv(y), qkv.bias.expand(b, 1, 3 * c)], dim=1)
    table = y.new_empty(t + 1, 3 * c)
    torch.addmm(qkv.bias, y.view(t, c), qkv.weight.t(), out=table[:t])  # what nn.Linear computes on 2-D rows
    table[t] = qkv.bias
    return table.view(1, t + 1, 3 * c)


def attend_windows(qkv: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Softmax attention inside each window, as `swin_attention.attend` computes it per value.

    qkv: (3, heads, B, T, head_dim) from `window_qkv` (q scaled; T = nW * N window tokens); bias from
    `attention_bias`, (nW or 1, heads, N, N). Returns the attention output (B, T, C) before the output
    projection, tokens in window order. Only where `heads_first_safe`."""
    _, heads, b, t, d = qkv.shape
    n = bias.shape[-1]
    q, k, v = (part.view(heads * b * (t // n), n, d) for part in qkv.unbind(0))
    scores = torch.bmm(q, k.transpose(1, 2))
    scores.view(heads, b, t // n, n, n).add_(bias.transpose(0, 1).unsqueeze(1))
    out = torch.bmm(scores.softmax(-1), v)  # (heads * B * nW, N, head_dim)
    return out.view(heads, b, t, d).permute(1, 2, 0, 3).reshape(b, t, heads * d)


def _gather(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """table (B, R, D) -> (B, len(index), D): rows `index` of each picture."""
    if table.shape[0] == 1:
        return table.view(-1, table.shape[-1]).index_select(0, index).unsqueeze(0)
    return table.index_select(1, index)


def block_forward(block: SwinBlock, x: torch.Tensor) -> torch.Tensor:
    """`block(x, mask)` for an eval-mode block where `fast_path_allowed`: x (B, H, W, C) contiguous -> (B, H, W, C)."""
    b, h, w, c = x.shape
    win, shift, attn = block.window_size, block.shift, block.attn
    hp, wp = (h + win - 1) // win * win, (w + win - 1) // win * win
    to_win, from_win = window_rows(h, w, win, shift, x.device)
    heads_first = heads_first_safe(win * win, c // attn.num_heads, x.element_size())
    qkv = window_qkv(attn, block.norm1(x).reshape(b, h * w, c), to_win, hp * wp - h * w, heads_first)
    bias = attention_bias(attn, hp, wp, shift, x.device)
    if heads_first:
        out = attend_windows(qkv, bias)
    else:
        out = attend(qkv.view(-1, win * win, 3 * c), attn.num_heads, attn.scale, bias).view(b, hp * wp, c)
    if b * h * w >= MIN_GEMM_ROWS:  # proj on the real tokens only
        out = attn.proj(_gather(out, from_win))
    else:  # on every window token, as the ordinary path (a GEMM of a few rows rounds differently)
        out = _gather(attn.proj(out), from_win)
    x = x + out.view(b, h, w, c)
    block.mlp.apply_in_chunks(x.view(-1, c), torch.Tensor.add_, norm=block.norm2)
    return x
