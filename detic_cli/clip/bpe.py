"""CLIP's BPE merge list (`bpe_simple_vocab_16e6.txt.gz`, as shipped with open_clip) and the tokenizer built from it."""

from __future__ import annotations

import gzip
import importlib.util
from functools import lru_cache
from pathlib import Path

from detic_cli.errors import DeticError
from detic_cli.modeling.text.tokenizer import ClipTokenizer

NUM_MERGES = 49152 - 256 - 2  # CLIP's vocabulary: 49408 ids = 2 * 256 byte symbols + merges + sot/eot


def default_bpe_path() -> Path:
    """The BPE merges file shipped with open_clip (identical to OpenAI CLIP's)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise DeticError("open_clip_torch is not installed; it ships the CLIP BPE vocabulary "
                         "(pip install open_clip_torch)")
    return Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"


def read_bpe_merges(path: Path | None = None) -> list[tuple[str, str]]:
    """The first NUM_MERGES merge pairs of a gzipped BPE file (default: open_clip's), in rank order.

    Line 1 is a header; each further line is two space-separated symbols.
    """
    lines = gzip.open(path or default_bpe_path()).read().decode("utf-8").split("\n")
    return [tuple(line.split()) for line in lines[1 : NUM_MERGES + 1] if line]  # type: ignore[misc]


@lru_cache(maxsize=1)
def clip_tokenizer() -> ClipTokenizer:
    """The process-wide CLIP tokenizer (reading the file and building the merge table takes ~0.3 s)."""
    return ClipTokenizer(read_bpe_merges())
