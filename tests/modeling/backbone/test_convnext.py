"""ConvNeXt-T bottom-up (timm feature layout): key layout, strict parity load, shapes, math vs timm."""

from __future__ import annotations

import pytest
import torch

from detic_cli.layers import mlp
from detic_cli.modeling.backbone.convnext import LayerNorm2d, TimmConvNeXt
from tests.conftest import OriginalChannelNorm

CONFIG = "Detic_LCOCOI21k_CLIP_CXT21k_640b32_4x_ft4x_max-size.yaml"
PREFIX = "backbone.bottom_up."




@pytest.fixture(scope="module")
def weights(parity_keys) -> dict[str, torch.Tensor]:
    return parity_keys.weights(parity_keys.manifest(CONFIG, PREFIX), PREFIX)


def test_state_dict_keys_and_shapes_match_manifest(parity_keys) -> None:
    model = TimmConvNeXt(base_name="convnext_tiny_21k", out_levels=(2, 3, 4))
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == parity_keys.manifest(CONFIG, PREFIX)


def test_metadata_matches_fpn_inputs() -> None:
    model = TimmConvNeXt(out_levels=(2, 3, 4))
    assert model.out_features == ["layer2", "layer3", "layer4"]
    # FPN laterals 3/4/5 of the checkpoint take 192/384/768 channels
    assert model.out_channels == {"layer2": 192, "layer3": 384, "layer4": 768}
    assert model.out_strides == {"layer2": 8, "layer3": 16, "layer4": 32}
    assert model.size_divisibility == 32
    assert not hasattr(TimmConvNeXt(out_levels=(1, 2)).base, "stages_2")  # truncated like timm's feature net
    with pytest.raises(ValueError, match="OUT_LEVELS"):
        TimmConvNeXt(out_levels=(3, 4, 5))
    with pytest.raises(ValueError, match="BASE_NAME"):
        TimmConvNeXt(base_name="convnext_huge")


@pytest.mark.parametrize(("h", "w"), [(64, 96), (225, 333)])
def test_parity_load_and_shapes(weights: dict[str, torch.Tensor], h: int, w: int) -> None:
    model = TimmConvNeXt().eval()
    model.load_state_dict(weights, strict=True)
    with torch.no_grad():
        out = model(torch.randn(1, 3, h, w))
    assert list(out) == ["layer2", "layer3", "layer4"]
    side_h, side_w = h // 4, w // 4
    for level, ch in zip((2, 3, 4), (192, 384, 768), strict=True):
        side_h, side_w = side_h // 2, side_w // 2
        assert tuple(out[f"layer{level}"].shape) == (1, ch, side_h, side_w)
        assert torch.isfinite(out[f"layer{level}"]).all()


def test_matches_timm_convnext(weights: dict[str, torch.Tensor]) -> None:
    timm = pytest.importorskip("timm")
    ref = timm.create_model("convnext_tiny", features_only=True, out_indices=(1, 2, 3), pretrained=False).eval()
    ref.load_state_dict({k[len("base.") :]: v for k, v in weights.items()}, strict=True)
    for s in (1, 2, 3):  # the original (timm 0.5.4) normalises there with the unbiased variance
        stage = getattr(ref, f"stages_{s}")
        stage.downsample[0] = OriginalChannelNorm(stage.downsample[0])
    model = TimmConvNeXt().eval()
    model.load_state_dict(weights, strict=True)
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ours, theirs = model(x), ref(x)
    for got, want in zip(ours.values(), theirs, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


def test_downsample_norm_is_the_originals() -> None:
    """The norm before each downsampling divides the channel variance by C - 1 (timm 0.5.4 on channels-last
    maps); the stem's divides by C; a 1 x 1 map (contiguous in both layouts) keeps the biased variance."""
    torch.manual_seed(0)
    norm = LayerNorm2d(8, unbiased=True)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(2, 8, 3, 5)
    with torch.no_grad():
        torch.testing.assert_close(norm(x), OriginalChannelNorm(norm)(x))
        biased = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (8,), norm.weight, norm.bias, norm.eps)
        assert not torch.allclose(norm(x), biased.permute(0, 3, 1, 2), rtol=1e-3, atol=1e-3)
        one = x[:, :, :1, :1]
        want = torch.nn.functional.layer_norm(one.permute(0, 2, 3, 1), (8,), norm.weight, norm.bias, norm.eps)
        torch.testing.assert_close(norm(one), want.permute(0, 3, 1, 2))
    model = TimmConvNeXt(out_levels=(2, 3, 4))
    assert not model.base.stem_1.unbiased
    assert all(getattr(model.base, f"stages_{s}").downsample[0].unbiased for s in (1, 2, 3))


def test_drop_path_only_in_training() -> None:
    model = TimmConvNeXt(out_levels=(4,), drop_path_rate=0.5)
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        a, b = model(x)["layer4"], model(x)["layer4"]
    torch.testing.assert_close(a, b)
    model.train()
    torch.manual_seed(1)
    with torch.no_grad():
        c = model(x)["layer4"]
    assert not torch.allclose(a, c)


@pytest.mark.parametrize(("b", "h", "w", "mlp_chunk"), [(1, 64, 64, 4096), (2, 40, 72, 4096), (2, 40, 72, 64)])
def test_inference_fast_path_equals_ordinary_forward(b: int, h: int, w: int, mlp_chunk: int, monkeypatch) -> None:
    """CPU inference (in-place GELU, layer scale, residuals, LayerNorm2d, the MLP in chunks of tokens) gives the
    ordinary forward's exact values and leaves the input untouched."""
    monkeypatch.setattr(mlp, "MLP_CHUNK", mlp_chunk)
    torch.manual_seed(0)
    model = TimmConvNeXt(base_name="convnext_tiny", out_levels=(1, 2, 3)).eval().requires_grad_(False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.normal_(0.0, 0.5)
    x = torch.randn(b, 3, h, w)
    before = x.clone()
    with torch.enable_grad():  # no parameter requires grad: the ordinary code path, nothing recorded
        want = model(x)
    with torch.no_grad():
        got = model(x)
    assert torch.equal(x, before)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0)
