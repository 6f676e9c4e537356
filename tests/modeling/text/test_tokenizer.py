"""The CLIP tokenizer against open_clip's (an independent copy of OpenAI's) and known ids; built from merges."""

from __future__ import annotations

import open_clip
import pytest
import torch

from detic_cli.clip.bpe import clip_tokenizer
from detic_cli.errors import DeticError
from detic_cli.modeling.text import tokenizer as tokenizer_module
from detic_cli.modeling.text.text_encoder import TextEncoder
from detic_cli.modeling.text.tokenizer import ClipTokenizer

SAMPLES = [
    "a cat", "a aerosol_can", "  Many   SPACES\tand\nnewlines ", "Crème brûlée", "&amp;lt;b&amp;gt;",
    "don't it's we're they've I'm you'll he'd", "R2-D2 (robot), v1.5!", "🐱 + 🐶 = ❤️", "猫", "日本語のテキスト",
    "собака", "कुत्ता", "ภาษาไทย", "١٢٣ عربى", "Ελληνικά", "한국어 고양이", "e\u0301te\u0301", "x" * 300,
    "a" + " b" * 100, "", "   ",
]


def tokenize(texts, **kwargs):
    return tokenizer_module.tokenize(clip_tokenizer(), texts, **kwargs)


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
    tok = clip_tokenizer()
    ids = tok.encode("𓀀 ꙮ \u200b\U0010fffd")
    assert ids and all(0 <= i < 49406 for i in ids)


def test_special_token_literal_is_end_of_text_as_in_openai():
    tok = clip_tokenizer()
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
    encoder = TextEncoder(embed_dim=8, width=64, heads=1, layers=1, tokenizer=clip_tokenizer())
    encoder.random_crop = True
    text = " ".join(str(i) for i in range(100))  # ~190 tokens, each window starts elsewhere
    windows = {tuple(encoder.tokenize([text]).ids[0, :3].tolist()) for _ in range(10)}
    assert len(windows) > 1
    encoder.random_crop = False
    assert int(encoder.tokenize([text]).ids[0, 0]) == 49406


def test_built_from_a_merge_list_alone():
    """A pure object: ids follow the given merges (2 * 256 byte symbols, one id per merge, then sot and eot)."""
    tok = ClipTokenizer([("c", "a"), ("ca", "t</w>")])
    assert (tok.sot_id, tok.eot_id) == (514, 515)
    assert tok.encode("Cat") == [513]  # c+a -> 512, then ca+t</w> -> 513
    assert tok.encode("ta") == [tok.encoder["t"], tok.encoder["a</w>"]]
    ids = tokenizer_module.tokenize(tok, ["cat cat", ""], context_length=4).ids
    assert ids.tolist() == [[514, 513, 513, 515], [514, 515, 0, 0]]


def test_text_input_needs_a_tokenizer():
    encoder = TextEncoder(embed_dim=8, width=64, heads=1, layers=1)
    with pytest.raises(DeticError, match="no tokenizer"):
        encoder(["a cat"])
    assert encoder(torch.tensor([[49406, 320, 2368, 49407]])).shape == (1, 8)  # token ids need none
