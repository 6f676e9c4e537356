"""Swin Transformer bottom-up backbone in the key layout of the original Detic checkpoints.

State-dict keys (what follows ``backbone.bottom_up.``): ``patch_embed.{proj,norm}``,
``layers.N.blocks.M.{norm1,attn.relative_position_bias_table,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``,
``layers.N.downsample.{norm,reduction}`` (N < 3) and one LayerNorm ``normI`` per returned stage I.
``relative_position_index`` is derived here: it is not saved and is dropped when a checkpoint has it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from detic_cli.layers.drop_path import drop_path
from detic_cli.layers.fast_conv import fast_path_allowed
from detic_cli.layers.mlp import Mlp
from detic_cli.modeling.backbone import swin_inference
from detic_cli.modeling.backbone.base import Backbone
from detic_cli.modeling.backbone.swin_attention import attend

MASK_VALUE = -100.0  # logit added to pairs of tokens from different regions of a shifted window


@dataclass(frozen=True)
class SwinSize:
    """Hyper-parameters of one `MODEL.SWIN.SIZE` value."""

    embed_dim: int
    depths: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int]
    window_size: int
    drop_path_rate: float


SWIN_SIZES: dict[str, SwinSize] = {
    "T": SwinSize(96, (2, 2, 6, 2), (3, 6, 12, 24), 7, 0.2),
    "S": SwinSize(96, (2, 2, 18, 2), (3, 6, 12, 24), 7, 0.2),
    "B": SwinSize(128, (2, 2, 18, 2), (4, 8, 16, 32), 7, 0.3),
    "B-22k": SwinSize(128, (2, 2, 18, 2), (4, 8, 16, 32), 7, 0.3),
    "B-22k-384": SwinSize(128, (2, 2, 18, 2), (4, 8, 16, 32), 12, 0.3),
    "L-22k": SwinSize(192, (2, 2, 18, 2), (6, 12, 24, 48), 7, 0.3),
    "L-22k-384": SwinSize(192, (2, 2, 18, 2), (6, 12, 24, 48), 12, 0.3),
}



def relative_position_index(window: int) -> torch.Tensor:
    """(w*w, w*w) int64 index into the (2w-1)^2 bias table for every (query, key) pair of a window."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)  # (2, N, N), values in [0, 2w-2]
    return rel[0] * (2 * window - 1) + rel[1]


def to_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of `window` -> (B * nH * nW, window * window, C), row-major windows."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def from_windows(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of `to_windows`: (B * nH * nW, window * window, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def shifted_window_mask(hp: int, wp: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """(nW, w*w, w*w) additive mask (0 or -100) for a (hp, wp) map rolled by -shift: tokens attend within a region."""
    region = torch.zeros(1, hp, wp, 1, device=device)
    bounds = ((0, hp - window), (hp - window, hp - shift), (hp - shift, hp))
    col_bounds = ((0, wp - window), (wp - window, wp - shift), (wp - shift, wp))
    label = 0
    for y0, y1 in bounds:
        for x0, x1 in col_bounds:
            region[:, y0:y1, x0:x1, :] = label
            label += 1
    ids = to_windows(region, window).squeeze(-1)  # (nW, N)
    diff = ids[:, None, :] - ids[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, MASK_VALUE)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside (w, w) windows with a learned relative position bias."""

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window_size = window_size
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # Official checkpoints carry the derived index; it is rebuilt here, so drop it.
        state_dict.pop(prefix + "relative_position_index", None)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B * nW, N, C) window tokens; mask: (nW, N, N) additive or None. Returns (B * nW, N, C)."""
        bw, n, c = x.shape
        return self.proj(attend(self.qkv(x), self.num_heads, self.scale, self.position_bias(mask)).view(bw, n, c))

    def position_bias(self, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The additive attention logits: the relative position bias (1, heads, N, N), N = window_size^2, plus
        the shifted-window mask (nW, N, N) when given -> (nW, heads, N, N)."""
        n = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        return bias if mask is None else bias + mask.unsqueeze(1)


class SwinBlock(nn.Module):
    """Pre-norm (shifted) window attention + MLP, each residual. Works on (B, H, W, C) for any H, W."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift: int, drop_path_rate: float) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift = shift
        self.drop_path_rate = drop_path_rate
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)

    def _attend(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Normalised x (B, H, W, C) -> attention output (B, H, W, C); zero padding to window multiples."""
        _, h, w, _ = x.shape
        win = self.window_size
        x = F.pad(x, (0, 0, 0, (win - w % win) % win, 0, (win - h % win) % win))
        hp, wp = x.shape[1], x.shape[2]
        if self.shift > 0:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        x = from_windows(self.attn(to_windows(x, win), mask if self.shift > 0 else None), win, hp, wp)
        if self.shift > 0:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        return x[:, :h, :w, :]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x: (B, H, W, C); mask: the stage's shifted-window mask (unused by the CPU inference fast path, which
        caches its own per shape). Returns (B, H, W, C)."""
        if not self.training and fast_path_allowed(x):
            return swin_inference.block_forward(self, x)
        x = x + drop_path(self._attend(self.norm1(x), mask), self.drop_path_rate, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path_rate, self.training)


class PatchMerging(nn.Module):
    """(B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 2C): concat of the 2x2 sub-samples, LayerNorm, Linear."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, 0, x.shape[2] % 2, 0, x.shape[1] % 2))
        # order: (even row, even col), (odd row, even col), (even row, odd col), (odd row, odd col)
        parts = [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]
        return self.reduction(self.norm(torch.cat(parts, dim=-1)))


class SwinStage(nn.Module):
    """`depth` blocks alternating plain and shifted windows, then an optional PatchMerging."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, window_size: int, drop_path_rates: Sequence[float], downsample: bool
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift = window_size // 2
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else self.shift, drop_path_rates[i])
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None
        self.use_checkpoint = False

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, H, W, C) -> (stage output (B, H, W, C), input of the next stage (B, ceil(H/2), ceil(W/2), 2C))."""
        win = self.window_size
        # (n + win - 1) // win, not -(-n // win): a traced shape's // is ONNX's Div, which truncates
        hp, wp = (x.shape[1] + win - 1) // win * win, (x.shape[2] + win - 1) // win * win
        fast = not self.training and fast_path_allowed(x)  # the blocks' fast path caches its own mask
        mask = None if fast else shifted_window_mask(hp, wp, win, self.shift, x.device)
        for blk in self.blocks:
            if self.use_checkpoint and self.training:
                x = checkpoint(blk, x, mask, use_reentrant=False)
            else:
                x = blk(x, mask)
        return x, (self.downsample(x) if self.downsample is not None else x)


class PatchEmbed(nn.Module):
    """(B, 3, H, W) zero-padded to multiples of `patch` -> (B, H/patch, W/patch, D): strided conv + LayerNorm."""

    def __init__(self, patch: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch
        x = F.pad(x, (0, (p - x.shape[3] % p) % p, 0, (p - x.shape[2] % p) % p))
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class SwinTransformer(Backbone):
    """Swin Transformer returning `swinI` (B, D * 2^I, ceil(H / 2^(I+2)), ...) for I in `out_indices`.

    Input: a normalised (B, 3, H, W) batch, any H, W (padding to patch and window multiples is internal).
    Output strides are 2^(I+2): swin1/2/3 -> 8/16/32. Stochastic depth only acts in training mode.
    """

    def __init__(
        self,
        *,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        drop_path_rate: float = 0.2,
        out_indices: Sequence[int] = (1, 2, 3),
        patch_size: int = 4,
        in_chans: int = 3,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.out_indices = tuple(int(i) for i in out_indices)
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        dims = [embed_dim * 2**i for i in range(len(depths))]
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            stage = SwinStage(
                dims[i], depth, num_heads[i], window_size, rates[start : start + depth], i < len(depths) - 1
            )
            stage.use_checkpoint = use_checkpoint
            self.layers.append(stage)
        for i in self.out_indices:
            self.add_module(f"norm{i}", nn.LayerNorm(dims[i]))
        self.out_features = [f"swin{i}" for i in self.out_indices]
        self.out_channels = {f"swin{i}": dims[i] for i in self.out_indices}
        self.out_strides = {f"swin{i}": patch_size * 2**i for i in self.out_indices}
        self.size_divisibility = 32
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, 3, H, W) float -> {"swinI": (B, C_I, H_I, W_I)} in NCHW."""
        x = self.patch_embed(x)
        outs: dict[str, torch.Tensor] = {}
        for i, stage in enumerate(self.layers):
            y, x = stage(x)
            if i in self.out_indices:
                outs[f"swin{i}"] = getattr(self, f"norm{i}")(y).permute(0, 3, 1, 2).contiguous()
        return outs


def _init_weights(m: nn.Module) -> None:
    """Training-from-scratch init of the original: truncated normal linears, unit LayerNorms."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def build_swin(
    size: str = "T", *, out_indices: Sequence[int] = (1, 2, 3), use_checkpoint: bool = False
) -> SwinTransformer:
    """The bottom-up Swin of `MODEL.SWIN.SIZE` (T, S, B, B-22k, B-22k-384, L-22k, L-22k-384)."""
    if size not in SWIN_SIZES:
        raise ValueError(f"unknown MODEL.SWIN.SIZE {size!r}; known: {sorted(SWIN_SIZES)}")
    s = SWIN_SIZES[size]
    return SwinTransformer(
        embed_dim=s.embed_dim,
        depths=s.depths,
        num_heads=s.num_heads,
        window_size=s.window_size,
        drop_path_rate=s.drop_path_rate,
        out_indices=out_indices,
        use_checkpoint=use_checkpoint,
    )
