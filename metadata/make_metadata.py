"""Make this folder's built-in vocabulary facts from the public files they come from.

    python metadata/make_metadata.py SOURCE_DIR [--out DIR]
    python -m detic_cli.metadata.make_metadata SOURCE_DIR [--out DIR]     (installed package)

SOURCE_DIR holds the original Detic `datasets/metadata/` files (`lvis_v1_train_cat_info.json`,
`Objects365_names_fix.csv`, `coco_categories.json`, the four `*_clip_a+cname*.npy` embedding files)
and OpenImages' `challenge-2019-classes-description-500.csv`. Only facts are extracted (names,
synonyms, frequencies, ids, sizes, hashes) into this project's own format; DIR (default: this
folder) receives, each written atomically:

- `vocabularies.json`: per built-in vocabulary (key = its name, in classifier-table order): `aliases`,
  `num_classes`, `classes` (the file below), `embeddings` (the released C x 512 `.npy`: filename,
  url, size in bytes, sha256, shape, dtype) and `source` (the public file the names come from:
  filename, url or null, size, sha256).
- `lvis_v1.json`: the 1203 LVIS v1 categories sorted by id: id (1..1203), name, synonyms, frequency
  ("r" rare, "c" common, "f" frequent).
- `objects365.json`: the 365 Objects365 categories sorted by id: id, name (the fixed spelling the
  embeddings encode, e.g. "Monitor/TV"), official_name (the dataset's spelling, e.g. "Moniter/TV").
- `openimages.json`: the 500 OpenImages challenge-2019 classes in file order: id (1..500), name,
  freebase_id.
- `coco.json`: the 80 COCO categories sorted by id: id (COCO's 1..90), name.

Each classes file is `{"vocabulary", "source", "classes": [...]}` with one class per line; a class's
index in `classes` is its row in the embedding file. The package reads them through
importlib.resources (`detic_cli.package_data.read_metadata`); the embeddings themselves are downloaded
and checked against the sha256 recorded here. tests/vocab/test_metadata.py re-derives everything from
../shared/detic-metadata and compares, so the shipped files cannot drift from their sources.

The folder's `zoo.json` (the model zoo) is not made here: it is kept by hand, and
tests/zoo/test_catalog.py checks it against the original MODEL_ZOO.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DETIC_METADATA_URL = "https://raw.githubusercontent.com/facebookresearch/Detic/main/datasets/metadata/"
OID_CLASSES_URL = "https://storage.googleapis.com/openimages/challenge_2019/challenge-2019-classes-description-500.csv"
Record = dict[str, Any]


def lvis_classes(path: Path) -> list[Record]:
    """LVIS v1 `cat_info` JSON -> [{id, name, synonyms, frequency}] sorted by id."""
    cats = sorted(json.loads(path.read_text(encoding="utf-8")), key=lambda c: int(c["id"]))
    return [{"id": int(c["id"]), "name": str(c["name"]), "synonyms": [str(s) for s in c["synonyms"]],
             "frequency": str(c["frequency"])} for c in cats]


def objects365_classes(path: Path) -> list[Record]:
    """`id,name,fixed name` CSV rows -> [{id, name (fixed), official_name}] sorted by id."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = sorted((r for r in csv.reader(handle) if r), key=lambda r: int(r[0]))
    return [{"id": int(r[0]), "name": r[2], "official_name": r[1]} for r in rows]


def openimages_classes(path: Path) -> list[Record]:
    """`MID,display name` CSV rows -> [{id (1-based file position), name, freebase_id}] in file order."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.reader(handle) if r]
    return [{"id": i, "name": r[1], "freebase_id": r[0]} for i, r in enumerate(rows, start=1)]


def coco_classes(path: Path) -> list[Record]:
    """COCO categories JSON (a list of {id, name}) -> [{id, name}] sorted by id."""
    cats = sorted(json.loads(path.read_text(encoding="utf-8")), key=lambda c: int(c["id"]))
    return [{"id": int(c["id"]), "name": str(c["name"])} for c in cats]


@dataclass(frozen=True)
class Spec:
    """How one built-in vocabulary is made: its names, the classes file written, the embedding file,
    the public file its names come from (url None when it has no stable public address) and its parser."""

    name: str
    aliases: tuple[str, ...]
    classes_file: str
    embeddings: str
    source: str
    source_url: str | None
    parse: Any


SPECS = (
    Spec("lvis", ("lvis_v1",), "lvis_v1.json", "lvis_v1_clip_a+cname.npy", "lvis_v1_train_cat_info.json",
         DETIC_METADATA_URL + "lvis_v1_train_cat_info.json", lvis_classes),
    Spec("objects365", ("o365",), "objects365.json", "o365_clip_a+cnamefix.npy", "Objects365_names_fix.csv",
         DETIC_METADATA_URL + "Objects365_names_fix.csv", objects365_classes),
    Spec("openimages", ("oid", "openimages_challenge_2019"), "openimages.json", "oid_clip_a+cname.npy",
         "challenge-2019-classes-description-500.csv", OID_CLASSES_URL, openimages_classes),
    Spec("coco", ("coco_2017",), "coco.json", "coco_clip_a+cname.npy", "coco_categories.json", None, coco_classes),
)


def _file_facts(path: Path) -> Record:
    data = path.read_bytes()
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _npy_header(path: Path) -> tuple[list[int], str]:
    """(shape, dtype name) of a `.npy` file, memory-mapped rather than read."""
    import numpy as np

    array = np.load(path, mmap_mode="r", allow_pickle=False)
    return list(array.shape), array.dtype.name


def derive(source_dir: Path) -> dict[str, Any]:
    """Every file this folder ships, as {file name: JSON value}, derived from `source_dir`."""
    out: dict[str, Any] = {}
    index: dict[str, Record] = {}
    for spec in SPECS:
        classes = spec.parse(source_dir / spec.source)
        shape, dtype = _npy_header(source_dir / spec.embeddings)
        if shape[0] != len(classes):
            raise SystemExit(f"{spec.embeddings}: {shape[0]} rows for {len(classes)} classes in {spec.source}")
        out[spec.classes_file] = {"vocabulary": spec.name, "source": spec.source, "classes": classes}
        index[spec.name] = {
            "aliases": list(spec.aliases), "num_classes": len(classes), "classes": spec.classes_file,
            "embeddings": {"filename": spec.embeddings, "url": DETIC_METADATA_URL + spec.embeddings,
                           **_file_facts(source_dir / spec.embeddings), "shape": shape, "dtype": dtype},
            "source": {"filename": spec.source, "url": spec.source_url, **_file_facts(source_dir / spec.source)},
        }
    out["vocabularies.json"] = index
    return out


def render(value: Any) -> str:
    """The text of one shipped file: a classes file keeps one class per line, the index is indented."""
    if isinstance(value, dict) and "classes" in value and isinstance(value["classes"], list):
        head = json.dumps({k: v for k, v in value.items() if k != "classes"}, ensure_ascii=False)[:-1]
        rows = ",\n".join(json.dumps(c, ensure_ascii=False) for c in value["classes"])
        return f'{head}, "classes": [\n{rows}\n]}}\n'
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Make the built-in vocabulary facts from the public files.")
    parser.add_argument("source_dir", type=Path, help="folder with the public metadata files")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="where to write")
    args = parser.parse_args(argv)
    missing = [n for s in SPECS for n in (s.source, s.embeddings) if not (args.source_dir / n).is_file()]
    if missing:
        raise SystemExit(f"{args.source_dir}: missing {', '.join(missing)}")
    from detic_cli.utils import atomic_path

    for name, value in derive(args.source_dir).items():
        with atomic_path(args.out / name) as tmp:
            tmp.write_text(render(value), encoding="utf-8")
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
