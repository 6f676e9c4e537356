"""WordNet 3.0 noun synsets by offset, read from the database files inside a zip (nltk's
`wordnet.zip`, members `*/data.noun` and `*/index.noun`), named the way nltk names them.

An ImageNet class id `n02691156` is the noun synset at offset 02691156. Its name is
`<first lemma, lower case>.n.<NN>`, NN being the 1-based position of the offset in that lemma's
sense list in `index.noun` (`airplane.n.01`); its lemmas keep their case (`Fosbury_flop`) and its
definition is the gloss without the quoted examples, parts joined by "; ".
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from detic_cli.errors import DeticError


@dataclass(frozen=True)
class Synset:
    name: str  # e.g. "airplane.n.01"
    lemmas: tuple[str, ...]  # e.g. ("airplane", "aeroplane", "plane")
    definition: str


def wnid_offset(wnid: str) -> int:
    """`n02691156` -> 2691156; anything else is a DeticError."""
    if len(wnid) != 9 or wnid[0] != "n" or not wnid[1:].isdigit():
        raise DeticError(f"{wnid!r} is not an ImageNet WordNet id (n + 8 digits)")
    return int(wnid[1:])


def noun_synsets(zip_path: Path, offsets: Iterable[int]) -> dict[int, Synset]:
    """The synsets at `offsets` (those found; unknown offsets are left out)."""
    wanted = set(offsets)
    with zipfile.ZipFile(zip_path) as archive:
        raw = {off: parsed for off, parsed in _data_lines(_member(archive, "data.noun")) if off in wanted}
        first = {lemmas[0].lower() for lemmas, _ in raw.values()}
        senses = dict(_index_lines(_member(archive, "index.noun"), first))
    out = {}
    for off, (lemmas, definition) in raw.items():
        lemma = lemmas[0].lower()
        order = senses.get(lemma, [])
        if off not in order:
            raise DeticError(f"{zip_path}: offset {off:08d} is missing from index.noun's entry for {lemma!r}")
        out[off] = Synset(f"{lemma}.n.{order.index(off) + 1:02d}", lemmas, definition)
    return out


def _member(archive: zipfile.ZipFile, basename: str) -> Iterator[str]:
    names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == basename]
    if not names:
        raise DeticError(f"{archive.filename}: no {basename} inside; expected the WordNet 3.0 database zip")
    with archive.open(names[0]) as raw:
        yield from io.TextIOWrapper(raw, encoding="utf-8", errors="replace")


def _data_lines(lines: Iterable[str]) -> Iterator[tuple[int, tuple[tuple[str, ...], str]]]:
    """(offset, (lemmas, definition)) per synset line of data.noun; licence lines are skipped."""
    for line in lines:
        if not line[:1].isdigit():
            continue
        columns, _, gloss = line.partition("|")
        fields = columns.split()
        count = int(fields[3], 16)
        lemmas = tuple(fields[4:4 + 2 * count:2])
        parts = [p.strip() for p in gloss.strip().split(";")]
        yield int(fields[0]), (lemmas, "; ".join(p for p in parts if not p.startswith('"')))


def _index_lines(lines: Iterable[str], wanted: set[str]) -> Iterator[tuple[str, list[int]]]:
    """(lemma, synset offsets in sense order) for the lemmas in `wanted`."""
    for line in lines:
        if line.startswith(" "):
            continue
        fields = line.split()
        if not fields or fields[0] not in wanted:
            continue
        n_synsets, n_pointers = int(fields[2]), int(fields[3])
        start = 4 + n_pointers + 2
        yield fields[0], [int(x) for x in fields[start:start + n_synsets]]
