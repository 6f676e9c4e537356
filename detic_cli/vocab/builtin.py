"""The four built-in vocabularies of the original Detic: LVIS, Objects365, OpenImages, COCO.

Their facts ship with the package as `detic_cli.metadata` (the repository's top-level `metadata/`
folder, made by `metadata/make_metadata.py` from the public files): the class names in classifier
order (LVIS with synonyms and r/c/f frequency) and, for each vocabulary, its released embedding file
(`datasets/metadata/*.npy` of the public Detic repository: CLIP ViT-B/32 text features of
"a " + class name, C x 512 float16, not normalised) with the size and sha256 it must have. Names are
read from the package, offline; only the embedding file is downloaded, through the zoo cache
(`DETIC_HOME/vocab`), and checked against that sha256.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from detic_cli.errors import DeticError
from detic_cli.package_data import read_metadata
from detic_cli.progress import Progress
from detic_cli.zoo import cache as zoo_cache
from detic_cli.zoo.assets import Asset
from detic_cli.zoo.download import fetch

INDEX_FILE = "vocabularies.json"


@dataclass(frozen=True)
class BuiltinClass:
    """One class of a built-in vocabulary. id: the dataset's category id (LVIS 1..1203, COCO 1..90,
    Objects365 1..365, OpenImages 1..500 = file position); name: what the embedding row encodes;
    synonyms and frequency ("r", "c" or "f"): LVIS only; official_name: Objects365's own spelling
    before the original's fixes; freebase_id: OpenImages' MID."""

    id: int
    name: str
    synonyms: tuple[str, ...] = ()
    frequency: str | None = None
    official_name: str | None = None
    freebase_id: str | None = None


@dataclass(frozen=True)
class BuiltinVocabulary:
    """name: canonical name; aliases: other accepted names; embeddings: the released C x D `.npy`
    (url, size, sha256); num_classes: C; embedding_shape/dtype: what that file holds ((C, 512), float16);
    classes_file: the shipped classes resource; names_file: the public file the names were extracted
    from (what `detic data prepare` still downloads for its extra fields), None when it has no URL."""

    name: str
    aliases: tuple[str, ...]
    embeddings: Asset
    num_classes: int
    embedding_shape: tuple[int, ...]
    embedding_dtype: str
    classes_file: str
    names_file: Asset | None = None

    def classes(self) -> tuple[BuiltinClass, ...]:
        """The C classes in classifier order (row i of the embeddings is class i), read offline."""
        return _classes(self.classes_file)

    def class_names(self) -> list[str]:
        return [c.name for c in self.classes()]

    def assets(self) -> list[Asset]:
        """What detecting with this vocabulary downloads: the embedding file only."""
        return [self.embeddings]


def _asset(facts: dict[str, Any]) -> Asset:
    return Asset(facts["filename"], facts["url"], kind="vocab", sha256=facts["sha256"], size=facts["size"])


def _vocabulary(name: str, entry: dict[str, Any]) -> BuiltinVocabulary:
    emb, source = entry["embeddings"], entry["source"]
    return BuiltinVocabulary(
        name=name, aliases=tuple(entry["aliases"]), embeddings=_asset(emb), num_classes=int(entry["num_classes"]),
        embedding_shape=tuple(emb["shape"]), embedding_dtype=emb["dtype"], classes_file=entry["classes"],
        names_file=_asset(source) if source.get("url") else None,
    )


@cache
def _classes(filename: str) -> tuple[BuiltinClass, ...]:
    records = read_metadata(filename)["classes"]
    return tuple(BuiltinClass(**{**r, "synonyms": tuple(r.get("synonyms", ()))}) for r in records)


BUILTINS: dict[str, BuiltinVocabulary] = {name: _vocabulary(name, e) for name, e in read_metadata(INDEX_FILE).items()}


def builtin_vocabulary(name: str) -> BuiltinVocabulary:
    """The built-in vocabulary called `name` or one of its aliases (case-insensitive)."""
    key = name.strip().lower()
    for vocab in BUILTINS.values():
        if key == vocab.name or key in vocab.aliases:
            return vocab
    known = [n for v in BUILTINS.values() for n in (v.name, *v.aliases)]
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise DeticError(f"vocabulary {name!r} is not built in; {hint}choose one of {', '.join(BUILTINS)}")


def is_builtin(name: str) -> bool:
    key = name.strip().lower()
    return any(key == v.name or key in v.aliases for v in BUILTINS.values())


def builtin_class_names(name: str) -> list[str]:
    """The C class names of built-in vocabulary `name` in classifier order, from the package (no download)."""
    return builtin_vocabulary(name).class_names()


def all_vocab_assets() -> list[Asset]:
    """Every file of the built-in vocabularies the cache may hold: the embedding files, and the public
    names files `detic data prepare` downloads (what `detic zoo verify` re-hashes)."""
    return [a for v in BUILTINS.values() for a in (v.embeddings, v.names_file) if a is not None]


def _first_clause(message: str) -> str:
    """`message` up to its first "; " outside parentheses: the fact, without the generic advice."""
    depth = 0
    for i, char in enumerate(message):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and message.startswith("; ", i):
            return message[:i]
    return message


def _not_fetched(vocab: BuiltinVocabulary, exc: DeticError) -> DeticError:
    """One line: which embedding file is missing, why it could not be fetched, and the pull command."""
    asset = vocab.embeddings
    lines = str(exc).strip().splitlines()
    cause = _first_clause(lines[0]) if lines else type(exc).__name__
    if asset.filename not in cause:
        where = zoo_cache.cached_path(asset)
        cause = f"{asset.filename} is not in the cache ({where}) and could not be fetched: {cause}"
    return DeticError(f"--vocab {vocab.name}: {cause}; get it with `detic zoo pull --vocab {vocab.name} --mirror DIR` "
                      f"(DIR: a folder holding {asset.filename}; a base URL or hf://OWNER/REPO works too) "
                      "or with network access")


def pull_builtin_vocabulary(name: str, *, mirror: str | None = None,
                            progress: Progress | None = None) -> list[Path]:
    """Download (or find in the cache) the embedding file of vocabulary `name`; returns [its path].
    A failure is one DeticError line naming the file and the `detic zoo pull --vocab` command."""
    vocab = builtin_vocabulary(name)
    try:
        return [fetch(a, mirror=mirror, progress=progress) for a in vocab.assets()]
    except DeticError as exc:
        raise _not_fetched(vocab, exc) from exc


def fetch_builtin_vocabulary(name: str, *, mirror: str | None = None,
                             progress: Progress | None = None) -> tuple[list[str], np.ndarray]:
    """(class names, C x D float32 embeddings in the same order) of the built-in vocabulary `name`
    (lvis, objects365/o365, openimages/oid, coco): names from the package, the embedding file from
    the cache, downloaded into DETIC_HOME first if missing."""
    vocab = builtin_vocabulary(name)
    path = pull_builtin_vocabulary(vocab.name, mirror=mirror, progress=progress)[0]
    names = vocab.class_names()
    emb = np.load(path, allow_pickle=False)
    if emb.ndim != 2 or emb.shape[0] != len(names) or len(names) != vocab.num_classes:
        raise DeticError(
            f"vocabulary {vocab.name}: {path} holds {emb.shape} embeddings for {len(names)} names, "
            f"expected {vocab.num_classes}; run `detic zoo verify`"
        )
    return names, emb.astype(np.float32)
