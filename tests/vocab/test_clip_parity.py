"""The shared CLIP case: same numbers as the original tools/dump_clip_features.py."""

from __future__ import annotations

import numpy as np

from detic_cli.vocab.build import embed_names
from detic_cli.vocab.clip_encoder import EncoderSpec
from detic_cli.vocab.prompts import prompt_template
from detic_cli.vocab.resolve import resolve_vocabulary


def test_visible_case_matches(parity_clip, clip_case, assert_close_to_case):
    names, expected = clip_case
    emb, encoder = embed_names(names, prompt_template("a"), EncoderSpec(clip_checkpoint=str(parity_clip)))
    assert emb.dtype == np.float32
    assert encoder.startswith("clip-checkpoint:sha256:")
    assert_close_to_case(emb, expected)
    assert np.abs(emb - expected).max() < 1e-3 * np.abs(expected).max()


def test_visible_case_through_resolver(parity_clip, clip_case, assert_close_to_case):
    names, expected = clip_case
    vocab = resolve_vocabulary(",".join(names), clip_checkpoint=str(parity_clip))
    assert vocab.names == names and vocab.source == "names"
    assert_close_to_case(vocab.embeddings, expected)


def test_batching_does_not_change_rows(parity_clip, clip_case, assert_close_to_case):
    names, expected = clip_case
    emb, _ = embed_names(names, "a {}", EncoderSpec(clip_checkpoint=str(parity_clip)), batch_size=5,
                         use_cache=False)
    assert_close_to_case(emb, expected)


def test_synonyms_are_averaged(parity_clip, clip_case):
    names, expected = clip_case
    spec = EncoderSpec(clip_checkpoint=str(parity_clip))
    emb, _ = embed_names(["x", "y"], "a {}", spec, synonyms=[names[:3], [names[5]]], use_cache=False)
    np.testing.assert_allclose(emb[0], expected[:3].mean(axis=0), rtol=0, atol=1e-3 * np.abs(expected).max())
    np.testing.assert_allclose(emb[1], expected[5], rtol=0, atol=1e-3 * np.abs(expected).max())


def test_long_unusual_and_non_latin_names(parity_clip, capsys):
    long_name = " ".join(["extraordinarily", "long", "hyphenated-compound", "name"] * 20)
    names = [long_name, "猫", "собака", "Crème brûlée", "R2-D2 (robot)", "🐱", "tête-à-tête"]
    emb, _ = embed_names(names, "a {}", EncoderSpec(clip_checkpoint=str(parity_clip)))
    assert emb.shape == (7, 512) and np.isfinite(emb).all()
    assert len({tuple(np.round(r, 3)) for r in emb}) == 7
    assert "longer than CLIP's 77 tokens" in capsys.readouterr().err
