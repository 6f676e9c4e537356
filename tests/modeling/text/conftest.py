"""The parity CLIP checkpoint, shared with tests/vocab through the session's base temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from detic_cli.clip.bpe import clip_tokenizer
from detic_cli.modeling.text.text_encoder import TextEncoder, text_encoder_from_state_dict


@pytest.fixture(scope="session")
def parity_tower(parity_clip: Path) -> TextEncoder:
    """The text tower of the parity checkpoint, float32, built once per session."""
    raw = torch.load(parity_clip, map_location="cpu", weights_only=True)
    state = {k: v.float() for k, v in raw.items() if not k.startswith("visual.") and k != "logit_scale"}
    return text_encoder_from_state_dict(state, tokenizer=clip_tokenizer())
