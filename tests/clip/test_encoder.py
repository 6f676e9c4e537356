"""Loading CLIP text towers from every supported checkpoint layout, safely."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from detic_cli.clip.bpe import clip_tokenizer
from detic_cli.clip.encoder import encode_sentences, load_text_encoder
from detic_cli.errors import DeticError
from detic_cli.modeling.text.text_encoder import TextEncoder
from detic_cli.utils import resolve_device as torch_device

TEXTS = ["a cat", "a 猫", "a traffic_light"]


@pytest.fixture(scope="module")
def tiny() -> TextEncoder:
    torch.manual_seed(0)
    return TextEncoder(embed_dim=16, width=64, heads=1, layers=2, tokenizer=clip_tokenizer()).eval()


def _features(model: TextEncoder) -> np.ndarray:
    return encode_sentences(model, TEXTS, torch.device("cpu"), batch_size=2)


def _with_visual(state: dict) -> dict:
    return {**state, "visual.proj": torch.zeros(4, 16), "logit_scale": torch.tensor(4.6)}


def test_openai_plain_fp16(tmp_path, tiny):
    path = tmp_path / "openai.pt"
    torch.save({k: v.half() for k, v in _with_visual(tiny.state_dict()).items()}, path)
    loaded = load_text_encoder(path)
    assert loaded.text_projection.dtype == torch.float32
    np.testing.assert_allclose(_features(loaded), _features(tiny), rtol=2e-2, atol=2e-2)


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("layout", ["open_clip", "safetensors", "detic", "torchscript"])
def test_layouts_fp32_exact(tmp_path, tiny, layout):
    state = _with_visual(tiny.state_dict())
    path = tmp_path / ("w.safetensors" if layout == "safetensors" else "w.pt")
    if layout == "open_clip":
        torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    elif layout == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif layout == "detic":
        torch.save({"model": {**{f"text_encoder.{k}": v for k, v in tiny.state_dict().items()},
                              "backbone.stem.weight": torch.zeros(2)}, "iteration": 9}, path)
    else:
        torch.jit.save(torch.jit.trace(_Holder(tiny), torch.zeros(1)), str(path))
    np.testing.assert_allclose(_features(load_text_encoder(path)), _features(tiny), rtol=1e-6, atol=1e-6)


class _Holder(torch.nn.Module):
    """A TorchScript archive whose state dict has the CLIP text keys at top level (as OpenAI's)."""

    def __init__(self, tower: TextEncoder) -> None:
        super().__init__()
        for name, child in tower.named_children():
            self.add_module(name, child)
        self.positional_embedding = tower.positional_embedding
        self.text_projection = tower.text_projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.positional_embedding.sum() + self.text_projection.sum()


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_rejects_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"x": _Evil()}, fh)
    with pytest.raises(DeticError, match="cannot be read safely"):
        load_text_encoder(path)


@pytest.mark.parametrize(("content", "message"), [
    ({"visual.proj": torch.zeros(2)}, "no CLIP text tower"),
    ([1, 2, 3], "not a CLIP checkpoint"),
    ({"token_embedding.weight": torch.zeros(10, 8), "text_projection": torch.zeros(8, 4)}, "CLIP \\(OpenAI\\) layout"),
])
def test_wrong_contents(tmp_path, content, message):
    path = tmp_path / "w.pt"
    torch.save(content, path)
    with pytest.raises(DeticError, match=message):
        load_text_encoder(path)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(DeticError, match="file not found"):
        load_text_encoder(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DeticError, match="cannot be read safely"):
        load_text_encoder(tmp_path / "junk.pt")


def test_devices_and_batch_size(tiny):
    assert torch_device("cpu").type == "cpu"
    with pytest.raises(DeticError, match="expected auto"):
        torch_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeticError, match="no CUDA"):
            torch_device("cuda")
    with pytest.raises(DeticError, match="at least 1"):
        encode_sentences(tiny, TEXTS, torch.device("cpu"), batch_size=0)
    one = encode_sentences(tiny, TEXTS, torch.device("cpu"), batch_size=1)
    np.testing.assert_allclose(one, _features(tiny), rtol=1e-5, atol=1e-6)
