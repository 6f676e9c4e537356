"""The CLIP text tower (OpenAI layout) and its byte-level BPE tokenizer.

One implementation serves both Detic's caption models (checkpoint keys `text_encoder.*`) and
`detic build-vocab` / `detect --vocab`. State-dict keys equal those of OpenAI's CLIP text part:
`token_embedding.weight`, `positional_embedding`, `transformer.resblocks.N.{attn,ln_1,mlp,ln_2}.*`,
`ln_final.*`, `text_projection`. Features are the projected end-of-text token, not normalised.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import ftfy
import regex
import torch
from torch import nn

SOT, EOT = "<|startoftext|>", "<|endoftext|>"
_PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)


def _byte_alphabet() -> dict[int, str]:
    """Each of the 256 byte values -> one printable unicode character (GPT-2 / CLIP scheme)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def default_bpe_path() -> Path:
    """The BPE merges file shipped with open_clip (identical to OpenAI CLIP's)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise RuntimeError("open_clip_torch is not installed; it ships the CLIP BPE vocabulary")
    return Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"


def _clean(text: str) -> str:
    """ftfy repair, double HTML unescape, collapse whitespace, lower-case (as OpenAI's tokenizer)."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return regex.sub(r"\s+", " ", text).strip().lower()


class ClipTokenizer:
    """OpenAI CLIP's tokenizer: any UTF-8 text -> BPE ids in [0, 49408); sot 49406, eot 49407."""

    def __init__(self, bpe_path: Path | None = None) -> None:
        lines = gzip.open(bpe_path or default_bpe_path()).read().decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
        self.byte_encoder = _byte_alphabet()
        symbols = list(self.byte_encoder.values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [SOT, EOT]
        self.encoder = {tok: i for i, tok in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self._cache: dict[str, list[str]] = {SOT: [SOT], EOT: [EOT]}
        self.sot_id, self.eot_id = self.encoder[SOT], self.encoder[EOT]

    def _bpe(self, token: str) -> list[str]:
        """Greedy lowest-rank merging of one pre-token (byte symbols, last one marked `</w>`)."""
        if token in self._cache:
            return self._cache[token]
        word = [*token[:-1], token[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(a, b) for a, b in zip(word, word[1:], strict=False)}
            best = min(pairs, key=lambda p: self.ranks.get(p, math.inf))
            if best not in self.ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self._cache[token] = word
        return word

    def encode(self, text: str) -> list[int]:
        """Text -> BPE ids without sot/eot (empty list for empty or whitespace-only text)."""
        ids: list[int] = []
        for piece in _PATTERN.findall(_clean(text)):
            symbols = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[s] for s in self._bpe(symbols))
        return ids


@lru_cache(maxsize=1)
def get_tokenizer() -> ClipTokenizer:
    """The process-wide tokenizer (building the merge table takes ~0.3 s)."""
    return ClipTokenizer()


@dataclass(frozen=True)
class Tokens:
    """`ids`: (N, context_length) int64, zero-padded; `truncated`: row indices that were cut."""

    ids: torch.Tensor
    truncated: tuple[int, ...]


def tokenize(texts: Sequence[str], context_length: int = 77, random_crop: bool = False) -> Tokens:
    """[sot] + BPE + [eot] per text. Too long: keep the first `context_length - 1` ids and end with
    eot (OpenAI's `truncate=True`), or with `random_crop` take a random window as Detic's caption
    training does (its eot may fall outside; the highest id is then read as in the original)."""
    tok = get_tokenizer()
    ids = torch.zeros(len(texts), context_length, dtype=torch.long)
    cut: list[int] = []
    for row, text in enumerate(texts):
        seq = [tok.sot_id, *tok.encode(text), tok.eot_id]
        if len(seq) > context_length:
            cut.append(row)
            if random_crop:
                start = int(torch.randint(len(seq) - context_length + 1, (1,)))
                seq = seq[start : start + context_length]
            else:
                seq = seq[: context_length - 1] + [tok.eot_id]
        ids[row, : len(seq)] = torch.tensor(seq)
    return Tokens(ids, tuple(cut))


class _LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype (as CLIP does for fp16)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.weight.float(), self.bias.float()
        return nn.functional.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _Block(nn.Module):
    """Pre-norm residual block: causal self-attention then a 4x MLP. Input (N, L, width)."""

    def __init__(self, width: int, heads: int, quick_gelu: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = _LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, width * 4))
        self.mlp.add_module("gelu", _QuickGELU() if quick_gelu else nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(width * 4, width))
        self.ln_2 = _LayerNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class _Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, quick_gelu: bool) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(_Block(width, heads, quick_gelu) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, mask)
        return x


class TextEncoder(nn.Module):
    """CLIP text tower. forward(list of N strings, or (N, L) token ids) -> (N, embed_dim) features.

    Defaults are ViT-B/32's: 77 tokens, 49408 BPE ids, width 512, 8 heads, 12 layers, 512 out.
    """

    def __init__(
        self,
        embed_dim: int = 512,
        context_length: int = 77,
        vocab_size: int = 49408,
        width: int = 512,
        heads: int = 8,
        layers: int = 12,
        quick_gelu: bool = True,
    ) -> None:
        super().__init__()
        self.context_length = context_length
        self.random_crop = False  # True: over-long captions get a random window, as Detic's training
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = _Transformer(width, layers, heads, quick_gelu)
        self.ln_final = _LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """CLIP's initialisation (normal, std scaled by width and depth), for training from scratch."""
        width, depth = self.ln_final.normalized_shape[0], len(self.transformer.resblocks)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=width**-0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=width**-0.5 * (2 * depth) ** -0.5)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=width**-0.5 * (2 * depth) ** -0.5)
        nn.init.normal_(self.text_projection, std=width**-0.5)

    def tokenize(self, texts: Sequence[str], random_crop: bool | None = None) -> Tokens:
        """Texts -> (N, context_length) ids; see `tokenize` (`random_crop` defaults to the attribute)."""
        return tokenize(texts, self.context_length, self.random_crop if random_crop is None else random_crop)

    def encode_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """(N, L <= context_length) ids, eot = highest id per row -> (N, embed_dim) features.

        Attention is causal, so columns after the last eot cannot change the result and are dropped.
        """
        dtype = self.text_projection.dtype
        ids = ids.to(self.text_projection.device)
        eot = ids.argmax(dim=-1)
        length = int(eot.max()) + 1 if ids.numel() else 1
        ids = ids[:, :length]
        x = self.token_embedding(ids).to(dtype) + self.positional_embedding[:length].to(dtype)
        mask = torch.full((length, length), float("-inf"), device=ids.device, dtype=dtype).triu_(1)
        x = self.ln_final(self.transformer(x, mask))
        return x[torch.arange(x.shape[0], device=x.device), eot] @ self.text_projection

    def forward(self, texts: Sequence[str] | torch.Tensor) -> torch.Tensor:
        ids = texts if isinstance(texts, torch.Tensor) else self.tokenize(list(texts)).ids
        return self.encode_tokens(ids)


def text_encoder_from_state_dict(state: dict[str, torch.Tensor], quick_gelu: bool = True) -> TextEncoder:
    """A TextEncoder (eval mode) sized from an OpenAI-layout text state dict (heads = width / 64);
    its parameters are the given tensors (same dtype and device, no copy).

    Raises KeyError/RuntimeError when the keys do not form a CLIP text tower.
    """
    width = state["ln_final.weight"].shape[0]
    layers = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
    with torch.device("meta"):  # no wasted random init: the tensors come from `state`
        model = TextEncoder(
            embed_dim=state["text_projection"].shape[1],
            context_length=state["positional_embedding"].shape[0],
            vocab_size=state["token_embedding.weight"].shape[0],
            width=width,
            heads=max(1, width // 64),
            layers=layers,
            quick_gelu=quick_gelu,
        )
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()
