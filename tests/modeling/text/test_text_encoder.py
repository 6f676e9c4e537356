"""The CLIP text tower: Detic checkpoint keys, parity with the original tool, and open_clip's tower."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from open_clip.transformer import QuickGELU, TextTransformer

from detic_cli.clip.bpe import clip_tokenizer
from detic_cli.modeling.text.text_encoder import TextEncoder, text_encoder_from_state_dict
from detic_cli.modeling.text.tokenizer import tokenize

CAPTION_CONFIGS = [
    "Detic_OVCOCO_CLIP_R50_1x_caption.yaml",
    "Detic_OVCOCO_CLIP_R50_1x_max-size_caption.yaml",
    "Detic_LbaseCCcapimg_CLIP_R5021k_640b64_4x_ft4x_max-size.yaml",
]


@pytest.fixture(scope="module")
def manifests(shared_dir: Path) -> dict:
    return json.loads((shared_dir / "parity" / "manifests.json").read_text())


@pytest.mark.parametrize("config", CAPTION_CONFIGS)
def test_state_dict_matches_detic_checkpoint_keys(manifests: dict, config: str):
    manifest = manifests[config]
    expected = {k.removeprefix("text_encoder."): tuple(s) for k, s in manifest.items() if k.startswith("text_encoder.")}
    ours = {k: tuple(v.shape) for k, v in TextEncoder().state_dict().items()}
    assert ours == expected


def test_parity_case(parity_tower: TextEncoder, shared_dir: Path):
    cases = shared_dir / "parity" / "cases"
    names = (cases / "clip_visible_names.txt").read_text(encoding="utf-8").splitlines()
    expected = np.load(cases / "clip_visible_expected.npy")
    with torch.no_grad():
        from_text = parity_tower(["a " + n for n in names]).numpy()
        from_ids = parity_tower(tokenize(clip_tokenizer(), ["a " + n for n in names]).ids).numpy()
    assert from_text.shape == (12, 512) and from_text.dtype == np.float32
    np.testing.assert_allclose(from_text, expected, rtol=0, atol=1e-3 * np.abs(expected).max())
    np.testing.assert_array_equal(from_text, from_ids)


def _tiny_reference() -> TextTransformer:
    torch.manual_seed(0)
    ref = TextTransformer(context_length=77, vocab_size=49408, width=64, heads=1, layers=2, output_dim=32,
                          act_layer=QuickGELU)
    for p in ref.parameters():  # open_clip zero-inits some tensors: randomise all for a real comparison
        torch.nn.init.normal_(p, std=0.05)
    return ref.eval()


def test_equals_open_clip_text_tower_on_any_text():
    """Same features as open_clip's (OpenAI-equivalent) tower, which runs all 77 positions."""
    ref = _tiny_reference()
    ours = text_encoder_from_state_dict({k: v for k, v in ref.state_dict().items() if k != "attn_mask"})
    texts = ["a cat", "a 猫", "a " + "very long name " * 30, "a R2-D2 (robot)!", "a собака", "a"]
    ids = tokenize(clip_tokenizer(), texts).ids
    with torch.no_grad():
        np.testing.assert_allclose(ours(ids).numpy(), ref(ids).numpy(), rtol=1e-5, atol=1e-5)


def test_batch_composition_does_not_change_a_row():
    """Columns after a row's end token are cut per batch; a row's features must not depend on it."""
    ref = _tiny_reference()
    ours = text_encoder_from_state_dict({k: v for k, v in ref.state_dict().items() if k != "attn_mask"},
                                        tokenizer=clip_tokenizer())
    with torch.no_grad():
        alone = ours(["a cat"])
        mixed = ours(["a cat", "a " + "much longer class name " * 5])[:1]
    np.testing.assert_allclose(alone.numpy(), mixed.numpy(), rtol=1e-5, atol=1e-6)


def test_fp16_weights_compute_layer_norm_in_float32(parity_tower: TextEncoder):
    half = text_encoder_from_state_dict({k: v.half() for k, v in parity_tower.state_dict().items()},
                                        tokenizer=clip_tokenizer()).half()
    with torch.no_grad():
        a = parity_tower(["a cat", "a dog"])
        b = half(["a cat", "a dog"]).float()
    assert b.dtype == torch.float32 and torch.isfinite(b).all()
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.999


def test_random_init_is_finite_and_sized():
    enc = TextEncoder(embed_dim=32, width=64, heads=1, layers=1, tokenizer=clip_tokenizer()).eval()
    with torch.no_grad():
        out = enc(["a cat", "a dog"])
    assert out.shape == (2, 32) and torch.isfinite(out).all()
