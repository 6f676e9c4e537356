"""The parity CLIP checkpoint, shared with tests/vocab through the session's base temp dir."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from detic_cli.modeling.text.text_encoder import TextEncoder, text_encoder_from_state_dict


@pytest.fixture(scope="session")
def parity_clip(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make_checkpoint.py clip --seed 0`: fp16 OpenAI-layout ViT-B/32 state dict."""
    out = tmp_path_factory.getbasetemp() / "parity_clip_seed0.pt"
    if not out.is_file():
        tmp = out.with_suffix(".partial")
        subprocess.run([sys.executable, str(shared_dir / "parity" / "make_checkpoint.py"), "clip", "--seed", "0",
                        "--out", str(tmp)], check=True, capture_output=True)
        tmp.replace(out)
    return out


@pytest.fixture(scope="session")
def parity_tower(parity_clip: Path) -> TextEncoder:
    """The text tower of the parity checkpoint, float32, built once per session."""
    raw = torch.load(parity_clip, map_location="cpu", weights_only=True)
    state = {k: v.float() for k, v in raw.items() if not k.startswith("visual.") and k != "logit_scale"}
    return text_encoder_from_state_dict(state)
