"""The dataset `detic label` writes once every input is labelled: COCO and/or YOLO, split by a hash of each
input's path, pictures linked or copied beside the labels.

Layout of DIR: `images/<split>/<name>` (hard links, else symbolic links, or copies), `annotations/
instances_<split>.json` (COCO: categories 1..K in ontology order, bbox XYWH pixels, score, segmentation as
polygons or RLE), `labels/<split>/<stem>.txt` and `data.yaml` (YOLO: normalised boxes, or polygons for a
mask model). Every file is written atomically; files an earlier write made that this one no longer has are
removed (listed in `.label/written.json`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from detic_cli.engine.formats import coco_annotations, yolo_lines
from detic_cli.engine.label_store import WORK, result_from_record
from detic_cli.engine.result import Result
from detic_cli.errors import DeticError
from detic_cli.utils import atomic_path, atomic_write_bytes

FORMATS = {"coco": ("coco",), "yolo": ("yolo",), "both": ("coco", "yolo")}

__all__ = ["FORMATS", "DatasetLayout", "LabelSummary", "output_names", "parse_split", "split_of", "write_dataset"]


def parse_split(spec: str) -> tuple[tuple[str, float], ...]:
    """"train=0.8,val=0.2" -> (("train", 0.8), ("val", 0.2)); fractions are normalised to sum to 1."""
    parts = []
    for entry in (e.strip() for e in spec.split(",")):
        name, _, value = entry.partition("=")
        try:
            fraction = float(value)
        except ValueError:
            fraction = -1.0
        if not name.strip() or fraction < 0 or "/" in name or name.strip() in {p[0] for p in parts}:
            raise DeticError(f"--split {spec}: expected NAME=FRACTION,... with distinct names and fractions >= 0 "
                             "(e.g. train=0.8,val=0.2)")
        parts.append((name.strip(), fraction))
    total = sum(f for _, f in parts)
    if total <= 0:
        raise DeticError(f"--split {spec}: the fractions add up to 0")
    return tuple((n, f / total) for n, f in parts)


def split_of(key: str, splits: tuple[tuple[str, float], ...], seed: int) -> str:
    """The split of the input `key`, from a hash of (seed, key) alone: adding inputs never moves another."""
    value = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:15], 16) / 16 ** 15
    edge = 0.0
    for name, fraction in splits:
        edge += fraction
        if value < edge:
            return name
    return splits[-1][0]


def output_names(records: list[dict[str, Any]]) -> dict[str, str]:
    """key -> file name in the dataset: the picture's name (`<video stem>_<frame>` for a frame); names several
    inputs share get a digest of their key."""
    def plain(rec: dict[str, Any]) -> str:
        if rec.get("frame_index") is None:
            return Path(rec["file_name"]).name
        return f"{Path(rec['file_name']).stem}_{int(rec['frame_index']):06d}{Path(rec['file']).suffix}"

    names = {rec["key"]: plain(rec) for rec in records}
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    for key, name in names.items():
        if counts[name] > 1:
            names[key] = f"{Path(name).stem}_{hashlib.sha1(key.encode()).hexdigest()[:8]}{Path(name).suffix}"
    return names


@dataclass(frozen=True)
class DatasetLayout:
    """What to write into `out`: formats ("coco", "yolo"), masks ("polygon", "rle", "none"), the split and its
    seed, copies instead of links, and whether pictures without detections are left out."""

    out: Path
    classes: tuple[str, ...]
    formats: tuple[str, ...] = ("coco",)
    masks: str = "polygon"
    splits: tuple[tuple[str, float], ...] = (("train", 1.0),)
    seed: int = 0
    copy_images: bool = False
    drop_empty: bool = False


@dataclass
class LabelSummary:
    """images: pictures in the dataset; per_class: detections per class; empty: pictures without any (kept as
    negatives, or dropped); bad: inputs skipped as unreadable; per_split: pictures per split."""

    images: int = 0
    per_class: dict[str, int] = field(default_factory=dict)
    empty: int = 0
    dropped: int = 0
    bad: int = 0
    per_split: dict[str, int] = field(default_factory=dict)


def write_dataset(layout: DatasetLayout, records: list[dict[str, Any]]) -> LabelSummary:
    """Write the dataset of the shard `records` (sorted by key) and return what it holds."""
    summary = LabelSummary(per_class={c: 0 for c in layout.classes})
    good = [r for r in records if "bad" not in r]
    summary.bad = len(records) - len(good)
    names = output_names(good)
    written: list[Path] = []
    for split, chosen in _by_split(layout, good):
        coco = _coco_header(layout.classes)
        for image_id, (record, result) in enumerate(_results(layout, chosen, summary), start=1):
            name = names[record["key"]]
            written.append(_place_image(Path(record["file"]), layout.out / "images" / split / name, layout.copy_images))
            if "coco" in layout.formats:
                coco["images"].append({"id": image_id, "file_name": name, "height": result.image_size[0],
                                       "width": result.image_size[1]})
                coco["annotations"] += coco_annotations(result, image_id, len(coco["annotations"]) + 1, layout.masks)
            if "yolo" in layout.formats:
                label = layout.out / "labels" / split / f"{Path(name).stem}.txt"
                polygons = layout.masks != "none"
                atomic_write_bytes(label, yolo_lines(result, polygons=polygons).encode("utf-8"))
                written.append(label)
            summary.per_split[split] = summary.per_split.get(split, 0) + 1
        if "coco" in layout.formats:
            written.append(layout.out / "annotations" / f"instances_{split}.json")
            atomic_write_bytes(written[-1], json.dumps(coco).encode("utf-8"))
    if "yolo" in layout.formats:
        written.append(_data_yaml(layout, [s for s, _ in layout.splits]))
    _forget_stale(layout.out, written)
    summary.images = sum(summary.per_split.values())
    return summary


def _by_split(layout: DatasetLayout, records: list[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    chosen: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in layout.splits}
    for record in records:
        chosen[split_of(record["key"], layout.splits, layout.seed)].append(record)
    yield from chosen.items()


def _results(layout: DatasetLayout, records: list[dict[str, Any]],
             summary: LabelSummary) -> Iterator[tuple[dict[str, Any], Result]]:
    """(record, Result) of each picture that goes into the dataset, counted in `summary`."""
    for record in records:
        result = result_from_record(record, list(layout.classes))
        if not len(result):
            summary.empty += 1
            if layout.drop_empty:
                summary.dropped += 1
                continue
        for name in result.class_names:
            summary.per_class[name] += 1
        yield record, result


def _coco_header(classes: tuple[str, ...]) -> dict[str, Any]:
    return {"info": {"description": "labelled by detic label"}, "images": [], "annotations": [],
            "categories": [{"id": i + 1, "name": name} for i, name in enumerate(classes)]}


def _data_yaml(layout: DatasetLayout, splits: list[str]) -> Path:
    path = layout.out / "data.yaml"
    for split in splits:  # a split no picture fell into is still a (empty) folder YOLO tools can open
        (layout.out / "images" / split).mkdir(parents=True, exist_ok=True)
        (layout.out / "labels" / split).mkdir(parents=True, exist_ok=True)
    data = {"path": str(layout.out.resolve()), **{s: f"images/{s}" for s in splits},
            "nc": len(layout.classes), "names": list(layout.classes)}
    atomic_write_bytes(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode("utf-8"))
    return path


def _place_image(source: Path, target: Path, copy: bool) -> Path:
    """`target` becomes the picture `source`: a hard link, else a symbolic link, or a copy with `copy`."""
    if not source.is_file():
        raise DeticError(f"{source}: the labelled picture is gone; put it back or rerun with --fresh")
    if target.exists() and not copy and not target.is_symlink() and os.path.samefile(source, target):
        return target
    if copy:
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.link")  # a link is renamed into place, never chmod-ed
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        os.symlink(source.resolve(), tmp)
    os.replace(tmp, target)
    return target


def _forget_stale(out: Path, written: list[Path]) -> None:
    """Remove the files an earlier write listed that this one did not write; list this one's."""
    listing = out / WORK / "written.json"
    now = {str(p.relative_to(out)) for p in written}
    if listing.is_file():
        for name in set(json.loads(listing.read_text(encoding="utf-8"))) - now:
            (out / name).unlink(missing_ok=True)
    atomic_write_bytes(listing, json.dumps(sorted(now)).encode("utf-8"))
