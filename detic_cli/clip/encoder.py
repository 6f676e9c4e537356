"""Which CLIP text tower (`EncoderSpec`, `encoder_id`), loading it from a local checkpoint or an open_clip model
name (once per process), and encoding sentences with it.

Accepted checkpoints: OpenAI's files (TorchScript archives as `clip.load` downloads them, or plain
state dicts, fp16 or fp32), open_clip files (`.pt`/`.bin` with or without `state_dict`/`module.`,
`.safetensors`), and Detic caption checkpoints (`{"model": {"text_encoder.*": ...}}`).
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from detic_cli.clip.bpe import clip_tokenizer
from detic_cli.clip.pretrained import open_clip_weights, split_model_name
from detic_cli.errors import DeticError, brief
from detic_cli.modeling.text.text_encoder import TextEncoder, text_encoder_from_state_dict
from detic_cli.utils import remembered_sha256

DEFAULT_CLIP_MODEL = "ViT-B-32"
_NOT_TEXT = ("visual.", "logit_scale", "logit_bias", "attn_mask", "input_resolution", "context_length",
             "vocab_size")


def _read_raw(path: Path) -> object:
    """The file's top-level object, loaded without executing pickled code."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    with warnings.catch_warnings():  # torch's deprecation / pickle-protocol notes are noise here
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        if zipfile.is_zipfile(path) and any(n.endswith("/constants.pkl") for n in zipfile.ZipFile(path).namelist()):
            # OpenAI's released .pt files are TorchScript archives; torch.load refuses them with
            # weights_only=True, and torch.jit.load restores tensors and TorchScript code, no pickled Python.
            return torch.jit.load(str(path), map_location="cpu").state_dict()
        return torch.load(str(path), map_location="cpu", weights_only=True)


def _text_state(raw: object, path: Path) -> dict[str, torch.Tensor]:
    """Unwrap `state_dict`/`model`, strip `module.`/`text_encoder.`, keep only the text-tower tensors."""
    for key in ("state_dict", "model"):
        if isinstance(raw, dict) and isinstance(raw.get(key), dict):
            raw = raw[key]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise DeticError(f"{path}: not a CLIP checkpoint (expected a state dict of tensors)")
    state = {k.removeprefix("module."): v for k, v in raw.items()}
    if any(k.startswith("text_encoder.") for k in state):
        state = {k.removeprefix("text_encoder."): v for k, v in state.items() if k.startswith("text_encoder.")}
    state = {k: v.float() for k, v in state.items() if not k.startswith(_NOT_TEXT)}
    if "token_embedding.weight" not in state or "text_projection" not in state:
        raise DeticError(f"{path}: no CLIP text tower found (token_embedding.weight, text_projection); "
                         "pass an OpenAI CLIP, open_clip or Detic caption checkpoint")
    return state


def load_text_encoder(path: str | Path, quick_gelu: bool = True) -> TextEncoder:
    """A float32 TextEncoder in eval mode with CLIP's tokenizer, from a local checkpoint file (module docstring)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DeticError(f"--clip-checkpoint {path}: file not found")
    try:
        raw = _read_raw(path)
    except Exception as exc:  # corrupt, truncated or unsafe pickle
        raise DeticError(f"--clip-checkpoint {path}: cannot be read safely ({type(exc).__name__}: "
                         f"{brief(exc)})") from exc
    state = _text_state(raw, path)
    try:
        return text_encoder_from_state_dict(state, quick_gelu=quick_gelu, tokenizer=clip_tokenizer())
    except (KeyError, RuntimeError, IndexError) as exc:
        raise DeticError(f"{path}: the text tower does not have the CLIP (OpenAI) layout: "
                         f"{brief(exc)}") from exc


@dataclass(frozen=True)
class EncoderSpec:
    """Which CLIP text tower to use: a local checkpoint file, else an open_clip model name."""

    clip_model: str = DEFAULT_CLIP_MODEL
    clip_checkpoint: str | None = None


def load_encoder(spec: EncoderSpec) -> TextEncoder:
    """The TextEncoder for `spec` on CPU, float32, eval mode."""
    if spec.clip_checkpoint:
        return load_text_encoder(spec.clip_checkpoint)
    file, quick = open_clip_weights(spec.clip_model)
    return load_text_encoder(file, quick_gelu=quick)


def encoder_id(spec: EncoderSpec) -> str:
    """A stable id of the text tower, computed without loading it.

    `clip-checkpoint:sha256:<hex of the file>` or `open_clip:<model>:<pretrained tag>`.
    """
    if spec.clip_checkpoint:
        path = Path(spec.clip_checkpoint).expanduser()
        if not path.is_file():
            raise DeticError(f"--clip-checkpoint {path}: file not found")
        return f"clip-checkpoint:sha256:{remembered_sha256(path)}"
    name, tag = split_model_name(spec.clip_model)
    return f"open_clip:{name}:{tag}"


_LOADED: dict[str, TextEncoder] = {}  # the last text tower loaded in this process, by encoder id


def cached_encoder(spec: EncoderSpec, enc_id: str) -> TextEncoder:
    """Load the text tower once per process (keeps only the most recent one, ~250 MB for ViT-B/32)."""
    if enc_id not in _LOADED:
        _LOADED.clear()
        _LOADED[enc_id] = load_encoder(spec)
    return _LOADED[enc_id]


def encode_sentences(
    model: TextEncoder,
    sentences: Sequence[str],
    device: torch.device,
    batch_size: int = 256,
    on_truncated: Callable[[int, str], None] | None = None,
) -> np.ndarray:
    """Sentences -> (N, D) float32 features, not normalised, computed in float32 in batches.

    `on_truncated(index, sentence)` is called for each sentence longer than the context.
    """
    if batch_size < 1:
        raise DeticError(f"--batch-size {batch_size}: must be at least 1")
    model = model.to(device=device, dtype=torch.float32).eval()
    out = np.zeros((len(sentences), model.text_projection.shape[1]), dtype=np.float32)
    for start in range(0, len(sentences), batch_size):
        chunk = list(sentences[start : start + batch_size])
        tokens = model.tokenize(chunk)
        for row in tokens.truncated:
            if on_truncated is not None:
                on_truncated(start + row, chunk[row])
        with torch.inference_mode():
            out[start : start + len(chunk)] = model.encode_tokens(tokens.ids.to(device)).float().cpu().numpy()
    return out
