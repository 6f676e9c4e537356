"""`--clip-model NAME[:TAG]`: find open_clip's pretrained weights in the local caches, else download.

Looked up, in order: huggingface_hub's cache (where open_clip stores them), OpenAI's `clip` package
cache (`~/.cache/clip/<file>.pt`, checked against the sha256 in its URL), then the network. With
no network and nothing cached the answer is one DeticError, not retries and a traceback.
"""

from __future__ import annotations

import logging
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from detic_cli.errors import DeticError
from detic_cli.utils import remembered_sha256

_PLAIN_TEXT_CFG = {"context_length", "vocab_size", "width", "heads", "layers"}


def split_model_name(clip_model: str) -> tuple[str, str]:
    """`NAME` or `NAME:TAG` -> (open_clip architecture, pretrained tag; default `openai`)."""
    name, _, tag = clip_model.partition(":")
    return name, tag or "openai"


@contextmanager
def _quiet():
    """open_clip and huggingface_hub log failed downloads and retries; we report one DeticError."""
    loggers = [logging.getLogger(), logging.getLogger("huggingface_hub")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _hf_cached(hf_hub: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    repo_id, filename = os.path.split(hf_hub)
    if filename:
        names = ([filename[:-4] + ".safetensors"] if filename.endswith((".bin", ".pth")) else []) + [filename]
    else:
        names = [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
    for fname in names:
        hit = try_to_load_from_cache(repo_id, fname)
        if isinstance(hit, str) and os.path.isfile(hit):
            return Path(hit)
    return None


def _openai_cached(url: str) -> Path | None:
    """`~/.cache/clip/<file>` as OpenAI's `clip.load` (and open_clip) save it, if its sha256 matches."""
    target = Path("~/.cache/clip").expanduser() / os.path.basename(url)
    if not target.is_file():
        return None
    expected = url.split("/")[-2] if "openaipublic" in url else ""
    return target if not expected or remembered_sha256(target).startswith(expected) else None


def cached_weights(cfg: dict) -> Path | None:
    """The local file of an open_clip pretrained config, or None when it is not cached."""
    return (_hf_cached(cfg["hf_hub"]) if cfg.get("hf_hub") else None) or (
        _openai_cached(cfg["url"]) if cfg.get("url") else None)


def _online() -> bool:
    import huggingface_hub.constants as hf_constants

    if hf_constants.HF_HUB_OFFLINE or os.environ.get("DETIC_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.getaddrinfo("huggingface.co", 443)
    except OSError:
        return False
    return True


def _check_text_tower(clip_model: str, model_cfg: dict) -> None:
    text_cfg = model_cfg.get("text_cfg", {})
    plain = set(text_cfg) <= _PLAIN_TEXT_CFG and text_cfg.get("heads", 0) * 64 == text_cfg.get("width", -1)
    if not plain or model_cfg.get("custom_text"):
        raise DeticError(f"--clip-model {clip_model}: its text tower is not CLIP's BPE transformer; "
                         "use a CLIP model such as ViT-B-32")


def open_clip_weights(clip_model: str) -> tuple[Path, bool]:
    """(local weights file, whether the text MLP uses QuickGELU) for an open_clip `NAME[:TAG]`."""
    import open_clip
    from open_clip import pretrained as oc_pretrained

    name, tag = split_model_name(clip_model)
    if name not in open_clip.list_models():
        raise DeticError(f"--clip-model {clip_model}: unknown open_clip model; try ViT-B-32, ViT-B-16, "
                         "ViT-L-14 (see open_clip.list_models())")
    cfg = oc_pretrained.get_pretrained_cfg(name, tag)
    if not cfg:
        tags = ", ".join(oc_pretrained.list_pretrained_tags_by_model(name)) or "none"
        raise DeticError(f"--clip-model {clip_model}: no pretrained weights '{tag}' (known tags: {tags})")
    model_cfg = open_clip.get_model_config(name) or {}
    _check_text_tower(clip_model, model_cfg)
    quick = bool(cfg.get("quick_gelu")) or bool(model_cfg.get("quick_gelu"))
    file = cached_weights(cfg)
    if file is not None:
        return file, quick
    if not _online():
        raise DeticError(f"CLIP {clip_model} weights '{tag}', which encode class names, are not in the local cache "
                         "and there is no network; connect once to download them, or pass --clip-checkpoint PATH")
    try:
        with _quiet():
            return Path(oc_pretrained.download_pretrained(cfg)), quick
    except Exception as exc:
        raise DeticError(f"--clip-model {clip_model}: downloading weights '{tag}' failed "
                         f"({type(exc).__name__}); retry, or pass --clip-checkpoint PATH") from exc
