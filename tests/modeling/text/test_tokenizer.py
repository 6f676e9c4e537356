"""The CLIP tokenizer against open_clip's (an independent copy of OpenAI's) and known ids."""

from __future__ import annotations

import open_clip
import pytest
import torch

from detic_cli.modeling.text.text_encoder import TextEncoder, get_tokenizer, tokenize

SAMPLES = [
    "a cat", "a aerosol_can", "  Many   SPACES\tand\nnewlines ", "Crème brûlée", "&amp;lt;b&amp;gt;",
    "don't it's we're they've I'm you'll he'd", "R2-D2 (robot), v1.5!", "🐱 + 🐶 = ❤️", "猫", "日本語のテキスト",
    "собака", "कुत्ता", "ภาษาไทย", "١٢٣ عربى", "Ελληνικά", "한국어 고양이", "e\u0301te\u0301", "x" * 300,
    "a" + " b" * 100, "", "   ",
]


def test_known_ids():
    ids = tokenize(["a cat", "a photo of a dog"]).ids
    assert ids.shape == (2, 77) and ids.dtype == torch.long
    assert ids[0, :5].tolist() == [49406, 320, 2368, 49407, 0]
    assert ids[1, :8].tolist() == [49406, 320, 1125, 539, 320, 1929, 49407, 0]


@pytest.mark.parametrize("text", SAMPLES)
def test_matches_open_clip(text):
    reference = open_clip.get_tokenizer("ViT-B-32")([text])
    assert torch.equal(tokenize([text]).ids, reference)


def test_any_utf8_round_trips_through_bytes():
    tok = get_tokenizer()
    ids = tok.encode("𓀀 ꙮ \u200b\U0010fffd")
    assert ids and all(0 <= i < 49406 for i in ids)


def test_special_token_literal_is_end_of_text_as_in_openai():
    tok = get_tokenizer()
    assert tok.encode("<|endoftext|>") == [tok.eot_id]


def test_long_text_is_truncated_with_end_token():
    long = "a" + " b" * 100
    tokens = tokenize(["short", long])
    assert tokens.truncated == (1,)
    row = tokens.ids[1]
    assert row[0] == 49406 and row[-1] == 49407 and int(row.argmax()) == 76
    assert (row != 0).all()


def test_random_crop_keeps_a_full_window():
    torch.manual_seed(0)
    tokens = tokenize(["a" + " b" * 100], random_crop=True)
    assert tokens.truncated == (0,) and (tokens.ids[0] != 0).all()
    encoder = TextEncoder(embed_dim=8, width=64, heads=1, layers=1)
    encoder.random_crop = True
    text = " ".join(str(i) for i in range(100))  # ~190 tokens, each window starts elsewhere
    windows = {tuple(encoder.tokenize([text]).ids[0, :3].tolist()) for _ in range(10)}
    assert len(windows) > 1
    encoder.random_crop = False
    assert int(encoder.tokenize([text]).ids[0, 0]) == 49406
