"""The parts shared by the Deformable DETR encoder and decoder layers keep the original checkpoint keys."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from detic_cli.modeling.detr.decoder import DeformableDecoderLayer
from detic_cli.modeling.detr.encoder import DeformableEncoderLayer
from detic_cli.modeling.detr.layer_parts import FFN_CHUNK, ffn_block, ffn_parts


def test_layers_keep_the_original_parameter_names_in_order():
    enc = [k for k, _ in DeformableEncoderLayer(d_model=16, d_ffn=32, n_heads=2).named_parameters()]
    dec = [k for k, _ in DeformableDecoderLayer(d_model=16, d_ffn=32, n_heads=2).named_parameters()]
    assert [k.split(".")[0] for k in enc] == ["self_attn"] * 8 + ["norm1"] * 2 + ["linear1"] * 2 + ["linear2"] * 2 \
        + ["norm2"] * 2
    assert list(dict.fromkeys(k.split(".")[0] for k in dec)) == ["cross_attn", "norm1", "self_attn", "norm2",
                                                                  "linear1", "linear2", "norm3"]


def test_ffn_block_is_the_post_norm_relu_feed_forward():
    torch.manual_seed(0)
    linear1, inner, linear2, drop, norm = parts = ffn_parts(d_model=8, d_ffn=16, dropout=0.0)
    x = torch.randn(2, 3, 8)
    expected = F.layer_norm(x + linear2(F.relu(linear1(x))), (8,), norm.weight, norm.bias)
    torch.testing.assert_close(ffn_block(x, *parts), expected)
    assert (linear1.out_features, linear2.out_features, inner.p, drop.p) == (16, 8, 0.0, 0.0)


def test_ffn_block_inference_chunks_give_the_whole_tensors_values():
    """Without gradient the CPU feed-forward runs over row chunks (FFN_CHUNK rows, a short tail joined to the
    chunk before it): bit for bit the one-pass result."""
    torch.manual_seed(0)
    parts = [p.eval() for p in ffn_parts(d_model=32, d_ffn=128, dropout=0.1)]
    linear1, _, linear2, _, norm = parts
    x = torch.randn(1, 2 * FFN_CHUNK + 40, 32)
    with torch.no_grad():
        expected = norm(x + linear2(F.relu(linear1(x))))
        assert torch.equal(ffn_block(x, *parts), expected)
    assert ffn_block(x.requires_grad_(True), *parts).requires_grad  # with gradient: the ordinary path
