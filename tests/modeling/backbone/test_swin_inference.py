"""Swin CPU inference fast path: identical to the ordinary forward, cache rebuilt when the weights change."""

from __future__ import annotations

import pytest
import torch

from detic_cli.layers import mlp
from detic_cli.modeling.backbone import swin_inference
from detic_cli.modeling.backbone.swin import SwinTransformer, from_windows, to_windows


def _tiny(embed_dim: int = 16, num_heads: tuple[int, ...] = (1, 2, 2, 4)) -> SwinTransformer:
    torch.manual_seed(0)
    model = SwinTransformer(embed_dim=embed_dim, depths=(2, 2, 2, 2), num_heads=num_heads, out_indices=(0, 1, 2, 3))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "relative_position_bias_table" in name:
                p.normal_()
    return model.eval().requires_grad_(False)


def _ordinary(model: SwinTransformer, x: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.enable_grad():  # no parameter requires grad: the ordinary code path, nothing recorded
        return model(x)


@pytest.mark.parametrize(("b", "h", "w", "mlp_chunk"), [(1, 56, 56, 4096), (2, 61, 90, 4096), (1, 61, 90, 64)])
def test_fast_path_equals_ordinary_forward(b: int, h: int, w: int, mlp_chunk: int, monkeypatch) -> None:
    # 61 x 90 pixels: 16 x 23 tokens, padded to 21 x 28 windows at stage 0 (qkv before the gather);
    # 56 x 56: 14 x 14 tokens, no padding until stage 2 (gather before qkv)
    # chunk 64: the MLP in five chunks (368 rows at stage 0, the 48-row tail joins the last)
    monkeypatch.setattr(mlp, "MLP_CHUNK", mlp_chunk)
    model = _tiny()
    x = torch.randn(b, 3, h, w)
    want = _ordinary(model, x)
    with torch.no_grad():
        got = model(x)
        again = model(x)  # served from the caches
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0)
        torch.testing.assert_close(again[name], want[name], rtol=0, atol=0)


@pytest.mark.parametrize("b", [1, 2])
def test_head_dims_off_the_blas_alignment_take_the_window_major_attention(b: int) -> None:
    # head_dim 5: 49 x 5 floats per window is not a multiple of 64 bytes, where MKL's batched product rounded
    # a matrix differently at another batch offset (measured), so these blocks keep the original's batch order
    model = _tiny(embed_dim=20, num_heads=(4, 8, 16, 32))
    assert not swin_inference.heads_first_safe(49, 5, 4)
    x = torch.randn(b, 3, 64, 64)
    want = _ordinary(model, x)
    with torch.no_grad():
        got = model(x)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0)


def test_heads_first_gate() -> None:
    assert swin_inference.heads_first_safe(49, 32, 4)  # every Swin of the model zoo
    assert swin_inference.heads_first_safe(144, 32, 4)  # 12-token windows
    assert swin_inference.heads_first_safe(49, 16, 4)
    assert not swin_inference.heads_first_safe(49, 8, 4)  # 32-byte steps: aligned for AVX2, not for AVX-512


def test_cached_bias_follows_weight_updates() -> None:
    model = _tiny()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        model(x)
        model.layers[0].blocks[1].attn.relative_position_bias_table.add_(1.0)  # as an optimiser step would
        got = model(x)
    want = _ordinary(model, x)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0)


def test_training_mode_and_gradient_take_the_ordinary_path(monkeypatch) -> None:
    model = _tiny().train().requires_grad_(True)
    calls = []
    monkeypatch.setattr(swin_inference, "block_forward", lambda *a: calls.append(a))
    model(torch.randn(1, 3, 32, 32))["swin3"].sum().backward()
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))  # training mode: stochastic depth must stay live
    assert calls == []
    assert model.layers[0].blocks[0].attn.qkv.weight.grad is not None


@pytest.mark.parametrize(("h", "w", "shift"), [(14, 21, 3), (10, 13, 3), (9, 7, 0)])
def test_window_rows_match_pad_roll_and_partition(h: int, w: int, shift: int) -> None:
    win = 7
    hp, wp = -(-h // win) * win, -(-w // win) * win
    x = torch.randn(1, h, w, 5)
    to_win, from_win = swin_inference.window_rows(h, w, win, shift, x.device)
    padded = torch.nn.functional.pad(x, (0, 0, 0, wp - w, 0, hp - h))
    want = to_windows(torch.roll(padded, (-shift, -shift), (1, 2)), win)
    table = torch.cat([x.view(-1, 5), torch.zeros(1, 5)])  # the last row stands for every padding token
    assert torch.equal(table[to_win].view_as(want), want)
    back = torch.roll(from_windows(want, win, hp, wp), (shift, shift), (1, 2))[:, :h, :w]
    assert torch.equal(want.reshape(-1, 5)[from_win].view(1, h, w, 5), back)
