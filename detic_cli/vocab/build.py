"""Class names -> CLIP text embeddings, as the original `tools/dump_clip_features.py` computes them.

Each name goes through the prompt template, CLIP's tokenizer (77 tokens) and text tower; the
end-of-text feature is kept unnormalised. With synonyms, each class is the mean of its synonyms'
features. Results are cached in `DETIC_HOME/vocab` by (names, prompt, encoder, synonyms).
"""

from __future__ import annotations

import numpy as np

from detic_cli.clip.encoder import EncoderSpec, cached_encoder, encode_sentences, encoder_id
from detic_cli.utils import resolve_device
from detic_cli.vocab import cache
from detic_cli.vocab.names import warn
from detic_cli.vocab.prompts import apply_prompt


def _sentence_groups(names: list[str], template: str, synonyms: list[list[str]] | None) -> list[list[str]]:
    """Per class, the sentences whose features are averaged (one unless synonyms are given)."""
    if synonyms is None:
        return [[s] for s in apply_prompt(template, names)]
    groups = []
    for name, syns in zip(names, synonyms, strict=True):
        if not syns:
            warn(f"class {name!r} has no synonyms; its name is used instead")
        groups.append(apply_prompt(template, list(syns) or [name]))
    return groups


def _report_truncated(sentences: list[str], rows: list[int], limit: int) -> None:
    if rows:
        shown = ", ".join(repr(sentences[r][:60] + ("..." if len(sentences[r]) > 60 else "")) for r in rows[:3])
        warn(f"{len(rows)} prompt(s) are longer than CLIP's {limit} tokens and were truncated to the first "
             f"{limit - 1} tokens plus the end token: {shown}")


def embed_names(
    names: list[str],
    template: str,
    spec: EncoderSpec,
    *,
    device: str = "cpu",
    batch_size: int = 256,
    synonyms: list[list[str]] | None = None,
    use_cache: bool = True,
) -> tuple[np.ndarray, str]:
    """Names -> ((C, D) float32 embeddings, encoder id); C = len(names), D = 512 for ViT-B/32.

    Values are raw CLIP text features (row norms of order 10), identical in meaning to the
    released `*_clip_a+cname.npy` files when `template` is `"a {}"`.
    """
    enc = encoder_id(spec)
    key = cache.cache_key(names, template, enc, synonyms)
    if use_cache and (hit := cache.load_cached(key)) is not None and hit.shape[0] == len(names):
        return hit, enc
    groups = _sentence_groups(names, template, synonyms)
    flat = [s for group in groups for s in group]
    model = cached_encoder(spec, enc)
    truncated: list[int] = []
    feats = encode_sentences(model, flat, resolve_device(device), batch_size,
                             on_truncated=lambda i, _s: truncated.append(i))
    _report_truncated(flat, truncated, model.context_length)
    bounds = np.cumsum([0] + [len(g) for g in groups])
    emb = np.stack([feats[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    emb = emb.astype(np.float32)
    if use_cache:
        cache.store_cached(key, emb, {"names": names, "prompt": template, "encoder": enc,
                                      "synonyms_averaged": synonyms is not None})
    return emb, enc
