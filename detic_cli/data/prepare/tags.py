"""Image labels from captions by class-name matching, as the original `tools/get_cc_tags.py`.

Each category contributes its synonyms, mapped to plain text: underscores become spaces, anything
from the first "(" on is dropped, lower case, stripped (`bat_(animal)` -> `bat`). A category
is tagged in a lower-cased caption when one of its names appears delimited by single spaces: in the
middle (" name "), at the start ("name ...") or at the end ("... name"); a caption that is exactly
the name does not count (as in the original). The search looks up the caption's space-separated
word n-grams in a table, which gives the same answer as testing every name against every caption.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any


def plain_name(name: str) -> str:
    """`bat_(animal)` -> `bat`; `Band_Aid` -> `band aid`."""
    text = name.replace("_", " ")
    if "(" in text:
        text = text[: text.find("(")]
    return text.lower().strip()


class CaptionTagger:
    """Category ids whose names occur in a caption; ids come back in the categories' order."""

    def __init__(self, categories: Sequence[dict[str, Any]]) -> None:
        self._order = {c["id"]: i for i, c in enumerate(categories)}
        table: dict[str, set[int]] = defaultdict(set)
        for cat in categories:
            for synonym in cat.get("synonyms") or [cat["name"]]:
                table[plain_name(synonym)].add(cat["id"])
        self._table = dict(table)
        self._longest = max((len(name.split(" ")) for name in self._table), default=0)

    def __call__(self, caption: str) -> list[int]:
        """Tags of one caption (it is lower-cased here)."""
        text = caption.lower()
        words = text.split(" ")
        found: set[int] = set()
        for i in range(len(words)):
            for j in range(i + 1, min(len(words), i + self._longest) + 1):
                gram = " ".join(words[i:j])
                hit = self._table.get(gram)
                if hit and gram != text:
                    found |= hit
        return sorted(found, key=self._order.__getitem__)


def tag_images(images: list[dict[str, Any]], tagger: CaptionTagger, *, all_captions: bool) -> list[dict[str, Any]]:
    """The images (dicts with "captions") that get at least one tag, each with "pos_category_ids" set.

    all_captions: match against all captions joined by spaces (COCO), else the first one (CC3M).
    """
    tagged = []
    for image in images:
        captions = image.get("captions") or [""]
        text = " ".join(captions) if all_captions else captions[0]
        image["pos_category_ids"] = tagger(text)
        if image["pos_category_ids"]:
            tagged.append(image)
    return tagged
