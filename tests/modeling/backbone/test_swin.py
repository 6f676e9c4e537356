"""Swin bottom-up: official key layout, strict parity-checkpoint load, shapes for odd sizes, block math."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from detic_cli.modeling.backbone.swin import PatchMerging, SwinBlock, SwinTransformer, build_swin, shifted_window_mask
from detic_cli.modeling.backbone.swin_attention import attend

CONFIG = "Detic_LCOCOI21k_CLIP_SwinB_896b32_4x_ft4x_max-size.yaml"
PREFIX = "backbone.bottom_up."
DERIVED = "relative_position_index"




@pytest.fixture(scope="module")
def swin_b() -> SwinTransformer:
    return build_swin("B-22k").eval()


def test_state_dict_keys_and_shapes_match_manifest(parity_keys, swin_b: SwinTransformer) -> None:
    manifest = parity_keys.manifest(CONFIG, PREFIX)
    expected = {k: v for k, v in manifest.items() if not k.endswith(DERIVED)}
    got = {k: tuple(v.shape) for k, v in swin_b.state_dict().items()}
    assert got == expected
    # the derived index the original saves has the manifest's shape
    index = swin_b.layers[0].blocks[0].attn.relative_position_index
    assert tuple(index.shape) == manifest["layers.0.blocks.0.attn.relative_position_index"]


def test_parity_checkpoint_loads_strictly_with_or_without_index(parity_keys, swin_b: SwinTransformer) -> None:
    weights = parity_keys.weights(parity_keys.manifest(CONFIG, PREFIX), PREFIX)
    assert not any(k.endswith(DERIVED) for k in weights)
    swin_b.load_state_dict(weights, strict=True)
    # official checkpoints also carry the index: accepted and ignored
    with_index = dict(weights)
    with_index["layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(49, 49, dtype=torch.long)
    swin_b.load_state_dict(with_index, strict=True)
    assert int(swin_b.layers[0].blocks[0].attn.relative_position_index.max()) == 168
    assert torch.equal(swin_b.layers[0].blocks[0].norm1.weight, weights["layers.0.blocks.0.norm1.weight"])

    with torch.no_grad():
        out = swin_b(torch.randn(1, 3, 64, 96))
    assert list(out) == ["swin1", "swin2", "swin3"]
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "swin1": (1, 256, 8, 12),
        "swin2": (1, 512, 4, 6),
        "swin3": (1, 1024, 2, 3),
    }
    assert all(torch.isfinite(v).all() for v in out.values())


def test_swin_b_metadata(swin_b: SwinTransformer) -> None:
    assert swin_b.out_features == ["swin1", "swin2", "swin3"]
    assert swin_b.out_channels == {"swin1": 256, "swin2": 512, "swin3": 1024}
    assert swin_b.out_strides == {"swin1": 8, "swin2": 16, "swin3": 32}
    assert swin_b.size_divisibility == 32
    assert len(swin_b.layers[2].blocks) == 18 and swin_b.layers[3].downsample is None
    with pytest.raises(ValueError, match="SWIN.SIZE"):
        build_swin("XL")


@pytest.mark.parametrize(("h", "w"), [(225, 333), (31, 17)])
def test_odd_input_sizes_are_padded(h: int, w: int) -> None:
    model = SwinTransformer(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, h, w))
    side_h, side_w = -(-h // 4), -(-w // 4)
    for i in range(4):
        assert tuple(out[f"swin{i}"].shape) == (2, 16 * 2**i, side_h, side_w)
        assert model.out_strides[f"swin{i}"] == 4 * 2**i
        side_h, side_w = -(-side_h // 2), -(-side_w // 2)


def _reference_block(blk: SwinBlock, x: torch.Tensor) -> torch.Tensor:
    """Unwindowed reference: full attention over the padded, rolled map, cross-window pairs excluded."""
    b, h, w, c = x.shape
    win, s, heads = blk.window_size, blk.shift, blk.attn.num_heads
    y = F.pad(blk.norm1(x), (0, 0, 0, (-w) % win, 0, (-h) % win))
    hp, wp = y.shape[1:3]
    y = torch.roll(y, (-s, -s), (1, 2))
    rows, cols = torch.meshgrid(torch.arange(hp), torch.arange(wp), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()

    def region(v: torch.Tensor, size: int) -> torch.Tensor:
        return (v >= size - win).long() + (v >= size - s).long() if s else torch.zeros_like(v)

    same_window = (rows[:, None] // win == rows[None] // win) & (cols[:, None] // win == cols[None] // win)
    reg = region(rows, hp) * 3 + region(cols, wp)
    logits_add = torch.where(reg[:, None] == reg[None], 0.0, -100.0)
    logits_add = logits_add.masked_fill(~same_window, float("-inf"))
    dr = (rows % win)[:, None] - (rows % win)[None] + win - 1
    dc = (cols % win)[:, None] - (cols % win)[None] + win - 1
    bias = blk.attn.relative_position_bias_table[dr * (2 * win - 1) + dc].permute(2, 0, 1)  # heads, L, L
    q, k, v = blk.attn.qkv(y.reshape(b, hp * wp, c)).view(b, hp * wp, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    attn = (q * blk.attn.scale) @ k.transpose(-1, -2) + bias + logits_add
    out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(b, hp, wp, c)
    out = torch.roll(blk.attn.proj(out), (s, s), (1, 2))[:, :h, :w]
    x = x + out
    return x + blk.mlp(blk.norm2(x))


@pytest.mark.parametrize("shift", [0, 3])
def test_window_block_matches_unwindowed_reference(shift: int) -> None:
    torch.manual_seed(0)
    blk = SwinBlock(dim=8, num_heads=2, window_size=7, shift=shift, drop_path_rate=0.1).eval()
    with torch.no_grad():
        blk.attn.relative_position_bias_table.normal_()
        x = torch.randn(2, 10, 13, 8)
        mask = shifted_window_mask(14, 14, 7, 3, x.device)
        assert mask.shape == (4, 49, 49)
        torch.testing.assert_close(blk(x, mask), _reference_block(blk, x), rtol=1e-5, atol=1e-5)


def test_patch_merging_order_and_odd_padding() -> None:
    torch.manual_seed(0)
    merge = PatchMerging(3).eval()
    x = torch.randn(1, 5, 7, 3)
    padded = F.pad(x, (0, 0, 0, 1, 0, 1))  # (1, 6, 8, 3)
    # sub-sample order: (row 0, col 0), (row 1, col 0), (row 0, col 1), (row 1, col 1) of each 2x2 cell
    cells = padded.view(1, 3, 2, 4, 2, 3).permute(0, 1, 3, 4, 2, 5).reshape(1, 3, 4, 12)
    with torch.no_grad():
        torch.testing.assert_close(merge(x), merge.reduction(merge.norm(cells)))
    assert merge(x).shape == (1, 3, 4, 6)


def test_matches_timm_swin_where_no_padding_is_needed() -> None:
    """timm 1.x's Swin (downsample moved to the next stage) agrees when every stage side exceeds the window."""
    swin_mod = pytest.importorskip("timm.models.swin_transformer")
    torch.manual_seed(0)
    dims = {"embed_dim": 16, "depths": (2, 2, 2, 2), "num_heads": (1, 2, 2, 4), "window_size": 7}
    ref = swin_mod.SwinTransformer(img_size=448, num_classes=0, **dims).eval()
    ours = SwinTransformer(out_indices=(0, 1, 2, 3), **dims).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0.0, 0.2)
    renamed = {}
    for key, value in ours.state_dict().items():
        if ".downsample." in key:
            stage, rest = key[len("layers.") :].split(".", 1)
            key = f"layers.{int(stage) + 1}.{rest}"
        renamed[key] = value
    missing, unexpected = ref.load_state_dict(renamed, strict=False)
    assert set(missing) == {"norm.weight", "norm.bias"}
    assert all(k.startswith("norm") and k[4].isdigit() for k in unexpected)
    x = torch.randn(1, 3, 448, 448)
    with torch.no_grad():
        got = ours(x)
        y = ref.patch_embed(x)
        for i, stage in enumerate(ref.layers):
            y = stage(y)
            want = getattr(ours, f"norm{i}")(y).permute(0, 3, 1, 2)
            torch.testing.assert_close(got[f"swin{i}"], want, rtol=1e-4, atol=1e-4)


def test_traced_onnx_graph_keeps_any_input_size(tmp_path) -> None:
    """Traced once (dynamic height and width), the ONNX graph's padding and shifted-window mask follow the
    input at other sizes, odd ones included, in onnxruntime (a ceil written as -(-n // w) broke it: ONNX's
    integer Div truncates)."""
    import onnxruntime

    torch.manual_seed(0)
    model = SwinTransformer(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), out_indices=(1, 2, 3)).eval()
    path = tmp_path / "swin.onnx"
    with torch.enable_grad():  # as `detic export` traces: no inference-only fast paths
        torch.onnx.export(model, (torch.randn(1, 3, 64, 96),), str(path), input_names=["x"],
                          output_names=model.out_features, dynamic_axes={"x": {2: "h", 3: "w"}}, opset_version=17,
                          dynamo=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for h, w in [(64, 96), (100, 70), (230, 161)]:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            want = model(x)
        got = session.run(None, {"x": x.numpy()})
        for name, array in zip(model.out_features, got):
            torch.testing.assert_close(torch.from_numpy(array), want[name], rtol=1e-4, atol=1e-4)



@pytest.mark.parametrize("windows_in_bias", [1, 4])
def test_attention_under_autocast_adds_the_float32_bias_as_the_original(windows_in_bias: int) -> None:
    """Under CPU autocast (bf16 matmuls) both the plain and the shifted-window bias are added out of place, so
    the logits are promoted to float32 before the softmax, as in the original's `attn + bias`."""
    torch.manual_seed(0)
    qkv = torch.randn(4, 49, 3 * 8)  # 4 windows of 49 tokens, 2 heads of 4 channels
    bias = torch.randn(windows_in_bias, 2, 49, 49)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = attend(qkv, 2, 0.5, bias)
        q, k, v = qkv.view(4, 49, 3, 2, 4).permute(2, 0, 3, 1, 4)
        logits = (q * 0.5) @ k.transpose(-2, -1) + bias  # bf16 product + float32 bias -> float32
        want = (logits.softmax(-1) @ v).transpose(1, 2).reshape(4 * 49, 8)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=0)
