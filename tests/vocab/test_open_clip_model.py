"""`--clip-model NAME`: weights through open_clip / huggingface_hub's cache, clear errors offline."""

from __future__ import annotations

import huggingface_hub.constants as hf_constants
import pytest

from detic_cli.clip.encoder import EncoderSpec
from detic_cli.errors import DeticError
from detic_cli.vocab.build import embed_names
from detic_cli.vocab.resolve import resolve_vocabulary


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "hub"


def test_not_cached_offline_is_a_clear_error(hf_cache, capsys):
    with pytest.raises(DeticError, match="not in the local cache.*no network.*--clip-checkpoint"):
        resolve_vocabulary("cat,dog")
    assert "Traceback" not in capsys.readouterr().err


def test_a_typo_of_a_builtin_name_is_pointed_out(hf_cache, parity_clip, capsys):
    with pytest.raises(DeticError, match=r"\(--vocab lvsi is read as a class name; did you mean the built-in lvis\?\)"):
        resolve_vocabulary("lvsi")
    voc = resolve_vocabulary("lvsi", clip_checkpoint=str(parity_clip))  # encodable: a warning, not an error
    assert voc.names == ["lvsi"] and "did you mean the built-in lvis" in capsys.readouterr().err
    with pytest.raises(DeticError, match="give only one of them"):
        resolve_vocabulary("coco", vocab_file="names.txt")


def test_cached_weights_are_used(hf_cache, parity_clip, clip_case, assert_close_to_case):
    """A huggingface_hub cache entry for open_clip's ViT-B-32 'openai' weights (here the parity file)."""
    repo = hf_cache / "models--timm--vit_base_patch32_clip_224.openai"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_pytorch_model.bin").symlink_to(parity_clip)
    names, expected = clip_case
    emb, encoder = embed_names(names, "a {}", EncoderSpec(clip_model="ViT-B-32"))
    assert encoder == "open_clip:ViT-B-32:openai"
    assert_close_to_case(emb, expected)


@pytest.mark.parametrize(("model", "message"), [
    ("ViT-Nope-99", "unknown open_clip model"), ("ViT-B-32:no_such_tag", "no pretrained weights"),
    ("ViT-B-32-SigLIP2-256:webli", "not CLIP's BPE transformer"),
])
def test_bad_model_names(hf_cache, model, message):
    with pytest.raises(DeticError, match=message):
        resolve_vocabulary("cat", clip_model=model)


def test_openai_clip_cache_needs_the_published_sha256(hf_cache, tmp_path, monkeypatch):
    """`~/.cache/clip/ViT-B-32.pt` (OpenAI's clip.load cache) is used only when its sha256 is right."""
    monkeypatch.setenv("HOME", str(tmp_path))
    clip_dir = tmp_path / ".cache" / "clip"
    clip_dir.mkdir(parents=True)
    (clip_dir / "ViT-B-32.pt").write_bytes(b"not the real file")
    with pytest.raises(DeticError, match="not in the local cache"):
        resolve_vocabulary("cat")


def test_detic_offline_skips_the_network(tmp_path, monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("DETIC_OFFLINE", "1")
    with pytest.raises(DeticError, match="no network"):
        resolve_vocabulary("cat")
