"""The four built-in vocabularies of the original Detic: LVIS, Objects365, OpenImages, COCO.

Each is the original CLIP embedding file (`datasets/metadata/*.npy` of the public Detic repository:
CLIP ViT-B/32 text features of "a " + class name, float16, not normalised) plus the class names in
classifier order, parsed from the public file they were made from. Files download through the zoo
cache (`DETIC_HOME/vocab`) and must match the sha256 recorded here.
"""

from __future__ import annotations

import csv
import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detic_cli.errors import DeticError
from detic_cli.zoo.assets import Asset
from detic_cli.zoo.download import fetch
from detic_cli.zoo.progress import Progress

METADATA_URL = "https://raw.githubusercontent.com/facebookresearch/Detic/main/datasets/metadata/"
OID_CLASSES_URL = "https://storage.googleapis.com/openimages/challenge_2019/challenge-2019-classes-description-500.csv"

COCO_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)


def _metadata(filename: str, sha256: str, size: int) -> Asset:
    return Asset(filename, METADATA_URL + filename, kind="vocab", sha256=sha256, size=size)


def lvis_names(path: Path) -> list[str]:
    """LVIS v1 category `name`s (e.g. "aerosol_can") sorted by category id, from the cat_info JSON."""
    cats = json.loads(path.read_text(encoding="utf-8"))
    return [c["name"] for c in sorted(cats, key=lambda c: c["id"])]


def objects365_names(path: Path) -> list[str]:
    """Objects365 names with the original's spelling fixes (third column of `id,name,fixed name`),
    sorted by id."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    return [r[2] for r in sorted(rows, key=lambda r: int(r[0]))]


def openimages_names(path: Path) -> list[str]:
    """OpenImages challenge-2019 display names (second column of `MID,name`), in file order."""
    with open(path, newline="", encoding="utf-8") as f:
        return [r[1] for r in csv.reader(f) if r]


@dataclass(frozen=True)
class BuiltinVocabulary:
    """name: canonical name; aliases: other accepted names; embeddings: the C x 512 `.npy`;
    names_file/parse: where the class names come from (None/None: `names` holds them);
    num_classes: C."""

    name: str
    aliases: tuple[str, ...]
    embeddings: Asset
    num_classes: int
    names_file: Asset | None = None
    parse: Callable[[Path], list[str]] | None = None
    names: tuple[str, ...] = ()

    def assets(self) -> list[Asset]:
        return [self.embeddings] + ([self.names_file] if self.names_file else [])


BUILTINS: dict[str, BuiltinVocabulary] = {
    v.name: v
    for v in (
        BuiltinVocabulary(
            "lvis", ("lvis_v1",),
            _metadata("lvis_v1_clip_a+cname.npy", "16059f1fe5f7d857273d16a1b7c6d6141a88d133e99a107be5065f42311da0f8",
                      1232000), 1203,
            _metadata("lvis_v1_train_cat_info.json",
                      "56abd7581b779fb62b167a52c76026839eabbfb5bfb12986e6170fbe0111fe40", 268947),
            lvis_names,
        ),
        BuiltinVocabulary(
            "objects365", ("o365",),
            _metadata("o365_clip_a+cnamefix.npy", "389a43e5c38eb22ca1b46a7328e57e7cd281b00c64250016be80d3c771711c13",
                      373888), 365,
            _metadata("Objects365_names_fix.csv", "2629b3d9f35163bfb25b49ef5d40cfbc0d037439b48b6884205bfaf3d2198c82",
                      8208),
            objects365_names,
        ),
        BuiltinVocabulary(
            "openimages", ("oid", "openimages_challenge_2019"),
            _metadata("oid_clip_a+cname.npy", "b24dbd0adf6244ae769aa609c8541bb80c4d60380d0841b8da4d7091faf5fe0a",
                      512128), 500,
            Asset("challenge-2019-classes-description-500.csv", OID_CLASSES_URL, kind="vocab",
                  sha256="34bde8f4fbf01008775fd8f59e8837ba25055729a103c294aced99963e5e6f9c", size=9737),
            openimages_names,
        ),
        BuiltinVocabulary(
            "coco", ("coco_2017",),
            _metadata("coco_clip_a+cname.npy", "3186340bfc1eb67c2131a451cbf9f623fa236b0ef5a2441b2d9a93ba46051f85",
                      82048), 80, names=COCO_NAMES,
        ),
    )
}


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


def all_vocab_assets() -> list[Asset]:
    """Every file of every built-in vocabulary."""
    return [a for v in BUILTINS.values() for a in v.assets()]


def pull_builtin_vocabulary(name: str, *, mirror: str | None = None,
                            progress: Progress | None = None) -> list[Path]:
    """Download (or find in the cache) the files of vocabulary `name`; returns their paths."""
    return [fetch(a, mirror=mirror, progress=progress) for a in builtin_vocabulary(name).assets()]


def fetch_builtin_vocabulary(name: str, *, mirror: str | None = None,
                             progress: Progress | None = None) -> tuple[list[str], np.ndarray]:
    """(class names, C x D float32 embeddings in the same order) of the built-in vocabulary `name`
    (lvis, objects365/o365, openimages/oid, coco), downloaded into DETIC_HOME if missing."""
    vocab = builtin_vocabulary(name)
    paths = pull_builtin_vocabulary(vocab.name, mirror=mirror, progress=progress)
    names = vocab.parse(paths[1]) if vocab.parse is not None else list(vocab.names)
    emb = np.load(paths[0], allow_pickle=False)
    if emb.ndim != 2 or emb.shape[0] != len(names) or len(names) != vocab.num_classes:
        raise DeticError(
            f"vocabulary {vocab.name}: {paths[0]} holds {emb.shape} embeddings for {len(names)} names, "
            f"expected {vocab.num_classes}; run `detic zoo verify`"
        )
    return names, emb.astype(np.float32)
