"""The shared CLIP case: same numbers as the original tools/dump_clip_features.py."""

from __future__ import annotations

import numpy as np
import pytest

from detic_cli.clip.encoder import EncoderSpec
from detic_cli.vocab.build import embed_names
from detic_cli.vocab.prompts import prompt_template
from detic_cli.vocab.resolve import resolve_vocabulary


def test_visible_case_matches(parity_clip, clip_case, assert_close_to_case):
    names, expected = clip_case
    emb, encoder = embed_names(names, prompt_template("a"), EncoderSpec(clip_checkpoint=str(parity_clip)))
    assert emb.dtype == np.float32
    assert encoder.startswith("clip-checkpoint:sha256:")
    assert_close_to_case(emb, expected)


def test_visible_case_through_resolver(parity_clip, clip_case, assert_close_to_case):
    names, expected = clip_case
    vocab = resolve_vocabulary(",".join(names), clip_checkpoint=str(parity_clip))
    assert vocab.names == names and vocab.source == "names"
    assert_close_to_case(vocab.embeddings, expected)


@pytest.mark.parametrize("batch_size", [1, 5])
def test_batching_does_not_change_rows(parity_clip, clip_case, assert_close_to_case, batch_size):
    names, expected = clip_case
    emb, _ = embed_names(names, "a {}", EncoderSpec(clip_checkpoint=str(parity_clip)), batch_size=batch_size,
                         use_cache=False)
    assert_close_to_case(emb, expected)


def test_synonyms_are_averaged(parity_clip, clip_case, assert_close_to_case):
    """A class with synonyms gets the plain mean of their rows (no renormalisation), as the original."""
    names, expected = clip_case
    spec = EncoderSpec(clip_checkpoint=str(parity_clip))
    emb, _ = embed_names(["x", "y"], "a {}", spec, synonyms=[names[:3], [names[5]]], use_cache=False)
    assert_close_to_case(emb, np.stack([expected[:3].mean(axis=0), expected[5]]))


def test_long_unusual_and_non_latin_names(parity_clip, capsys):
    long_name = " ".join(["extraordinarily", "long", "hyphenated-compound", "name"] * 20)
    names = [long_name, "猫", "собака", "Crème brûlée", "R2-D2 (robot)", "🐱", "tête-à-tête"]
    emb, _ = embed_names(names, "a {}", EncoderSpec(clip_checkpoint=str(parity_clip)))
    assert emb.shape == (7, 512) and np.isfinite(emb).all()
    assert len({tuple(np.round(r, 3)) for r in emb}) == 7
    assert "longer than CLIP's 77 tokens" in capsys.readouterr().err
