"""OpenAI CLIP's byte-level BPE tokenizer, built from its merge list (no file is read here).

The merge list is the content of CLIP's `bpe_simple_vocab_16e6.txt.gz` (48894 pairs); `detic_cli.clip.bpe`
reads it. Ids: 256 byte symbols, their 256 end-of-word forms, one id per merge, then sot and eot.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import ftfy
import regex
import torch

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


def _clean(text: str) -> str:
    """ftfy repair, double HTML unescape, collapse whitespace, lower-case (as OpenAI's tokenizer)."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return regex.sub(r"\s+", " ", text).strip().lower()


class ClipTokenizer:
    """CLIP's tokenizer: any UTF-8 text -> BPE ids in [0, 512 + len(merges) + 2); with CLIP's 48894
    merges that is [0, 49408), sot 49406 and eot 49407.

    `merges`: the BPE merge pairs in rank order (lowest rank merges first).
    """

    def __init__(self, merges: Sequence[tuple[str, str]]) -> None:
        merges = [tuple(m) for m in merges]
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


@dataclass(frozen=True)
class Tokens:
    """`ids`: (N, context_length) int64, zero-padded; `truncated`: row indices that were cut."""

    ids: torch.Tensor
    truncated: tuple[int, ...]


def tokenize(tokenizer: ClipTokenizer, texts: Sequence[str], context_length: int = 77,
             random_crop: bool = False) -> Tokens:
    """[sot] + BPE + [eot] per text. Too long: keep the first `context_length - 1` ids and end with
    eot (OpenAI's `truncate=True`), or with `random_crop` take a random window as Detic's caption
    training does (its eot may fall outside; the highest id is then read as in the original)."""
    ids = torch.zeros(len(texts), context_length, dtype=torch.long)
    cut: list[int] = []
    for row, text in enumerate(texts):
        seq = [tokenizer.sot_id, *tokenizer.encode(text), tokenizer.eot_id]
        if len(seq) > context_length:
            cut.append(row)
            if random_crop:
                start = int(torch.randint(len(seq) - context_length + 1, (1,)))
                seq = seq[start : start + context_length]
            else:
                seq = seq[: context_length - 1] + [tokenizer.eot_id]
        ids[row, : len(seq)] = torch.tensor(seq)
    return Tokens(ids, tuple(cut))
