"""The whole Swin bottom-up against a transcription of the original's token-sequence algorithm
(flattened (B, H*W, C) tokens, explicit windowed attention, slice-built shift mask), on input sizes
that need patch padding, window padding, odd patch merging and stages smaller than one window."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from detic_cli.modeling.backbone.swin import SwinTransformer

WIN = 7


def _ln(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, 1e-5)


def _stage_mask(hp: int, wp: int, shift: int) -> torch.Tensor:
    img = torch.zeros(1, hp, wp, 1)
    cuts = (slice(0, -WIN), slice(-WIN, -shift), slice(-shift, None))
    for n, (hs, ws) in enumerate((h, w) for h in cuts for w in cuts):
        img[:, hs, ws, :] = n
    win = img.view(1, hp // WIN, WIN, wp // WIN, WIN, 1).permute(0, 1, 3, 2, 4, 5).reshape(-1, WIN * WIN)
    diff = win.unsqueeze(1) - win.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


def _attention(attn, windows: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    b_, n, c = windows.shape
    heads = attn.num_heads
    qkv = F.linear(windows, attn.qkv.weight, attn.qkv.bias).reshape(b_, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    logits = (qkv[0] * (c // heads) ** -0.5) @ qkv[1].transpose(-2, -1)
    # relative position index built the original way: (dy + w - 1) * (2w - 1) + (dx + w - 1)
    ys, xs = torch.meshgrid(torch.arange(WIN), torch.arange(WIN), indexing="ij")
    dy = ys.flatten()[:, None] - ys.flatten()[None, :] + WIN - 1
    dx = xs.flatten()[:, None] - xs.flatten()[None, :] + WIN - 1
    bias = attn.relative_position_bias_table[(dy * (2 * WIN - 1) + dx).view(-1)].view(n, n, -1).permute(2, 0, 1)
    logits = logits + bias.unsqueeze(0)
    if mask is not None:
        nw = mask.shape[0]
        logits = (logits.view(b_ // nw, nw, heads, n, n) + mask.unsqueeze(1).unsqueeze(0)).view(-1, heads, n, n)
    out = (logits.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(b_, n, c)
    return F.linear(out, attn.proj.weight, attn.proj.bias)


def _block(blk, x: torch.Tensor, h: int, w: int, shift: int, mask: torch.Tensor) -> torch.Tensor:
    b, _, c = x.shape
    y = _ln(x, blk.norm1).view(b, h, w, c)
    y = F.pad(y, (0, 0, 0, (WIN - w % WIN) % WIN, 0, (WIN - h % WIN) % WIN))
    hp, wp = y.shape[1:3]
    if shift:
        y = torch.roll(y, (-shift, -shift), (1, 2))
    win = y.view(b, hp // WIN, WIN, wp // WIN, WIN, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, WIN * WIN, c)
    win = _attention(blk.attn, win, mask if shift else None)
    y = win.view(b, hp // WIN, wp // WIN, WIN, WIN, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
    if shift:
        y = torch.roll(y, (shift, shift), (1, 2))
    x = x + y[:, :h, :w, :].reshape(b, h * w, c)
    mlp = blk.mlp
    return x + F.linear(F.gelu(F.linear(_ln(x, blk.norm2), mlp.fc1.weight, mlp.fc1.bias)), mlp.fc2.weight, mlp.fc2.bias)


def _merge(down, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    b, _, c = x.shape
    x = F.pad(x.view(b, h, w, c), (0, 0, 0, w % 2, 0, h % 2))
    x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1).view(b, -1, 4 * c)
    return F.linear(_ln(x, down.norm), down.reduction.weight)


def reference_swin(model: SwinTransformer, x: torch.Tensor) -> dict[str, torch.Tensor]:
    pe = model.patch_embed
    if x.shape[3] % 4:
        x = F.pad(x, (0, 4 - x.shape[3] % 4))
    if x.shape[2] % 4:
        x = F.pad(x, (0, 0, 0, 4 - x.shape[2] % 4))
    x = F.conv2d(x, pe.proj.weight, pe.proj.bias, stride=4)
    h, w = x.shape[2:]
    x = _ln(x.flatten(2).transpose(1, 2), pe.norm)
    outs = {}
    for i, layer in enumerate(model.layers):
        hp, wp = -(-h // WIN) * WIN, -(-w // WIN) * WIN
        mask = _stage_mask(hp, wp, WIN // 2)
        for j, blk in enumerate(layer.blocks):
            x = _block(blk, x, h, w, 0 if j % 2 == 0 else WIN // 2, mask)
        out, oh, ow = x, h, w
        if layer.downsample is not None:
            x, h, w = _merge(layer.downsample, x, h, w), (h + 1) // 2, (w + 1) // 2
        outs[f"swin{i}"] = _ln(out, getattr(model, f"norm{i}")).view(-1, oh, ow, out.shape[-1]).permute(0, 3, 1, 2)
    return outs


@pytest.mark.parametrize(("h", "w"), [(101, 157), (58, 90)])
def test_swin_matches_the_original_algorithm(h: int, w: int) -> None:
    torch.manual_seed(0)
    model = SwinTransformer(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=WIN,
                            out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
        x = torch.randn(2, 3, h, w)
        got, want = model(x), reference_swin(model, x)
    assert list(got) == list(want)
    for name in want:
        assert got[name].shape == want[name].shape
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-4)
