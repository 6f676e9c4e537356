"""The resumable state of a `detic label` run, kept in `DIR/.label/`.

`settings.json` records what decides the detections (model, vocabulary, ontology, thresholds, filters); a
rerun with other settings is refused rather than mixing results. `items.json` lists the run's inputs
(one per picture or sampled video frame, sorted by key) for `--status`. `shards/<digest>.json` holds one
input's labelled detections (or why it was skipped), written atomically the moment it is done, so an
interrupted run loses at most the pictures in flight; `frames/<digest>.<ext>` the decoded video frames.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detic_cli.engine.result import Result
from detic_cli.errors import DeticError
from detic_cli.utils import atomic_write_bytes

WORK = ".label"

__all__ = ["WORK", "LabelStatus", "LabelStore", "result_from_record", "shard_record"]


@dataclass(frozen=True)
class LabelStatus:
    """done of total inputs have a shard; bad: of those, the ones skipped as unreadable."""

    done: int
    total: int
    bad: int


class LabelStore:
    """The `.label/` folder of the dataset folder `out`."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.work = out / WORK
        self.shards = self.work / "shards"
        self.frames = self.work / "frames"

    @staticmethod
    def digest(key: str) -> str:
        return hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]

    def shard_path(self, key: str) -> Path:
        return self.shards / f"{self.digest(key)}.json"

    def frame_path(self, key: str, ext: str) -> Path:
        return self.frames / f"{self.digest(key)}.{ext}"

    def mismatch(self, settings: dict[str, Any], *, fresh: bool) -> str | None:
        """Claim the folder for `settings` (None), or the one-line reason it holds results of other settings.
        `fresh` drops the earlier run's state (and the dataset files it wrote) first."""
        path = self.work / "settings.json"
        if fresh and self.work.is_dir():
            self._drop_dataset()
            shutil.rmtree(self.work)
        elif path.is_file() and any(self.shards.glob("*.json")):  # settings without results bind nothing
            try:
                earlier = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                earlier = None
            if earlier != settings:
                changed = sorted(k for k in set(settings) | set(earlier or {})
                                 if (earlier or {}).get(k) != settings.get(k))
                return (f"--out {self.out}: labelled with other settings ({', '.join(changed)} differ); rerun with "
                        "the same options, or add --fresh to start over")
        self.shards.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(settings, indent=1, sort_keys=True).encode("utf-8"))
        return None

    def _drop_dataset(self) -> None:
        """Remove the dataset files an earlier run wrote (listed in written.json), nothing else."""
        listing = self.work / "written.json"
        if listing.is_file():
            for name in json.loads(listing.read_text(encoding="utf-8")):
                (self.out / name).unlink(missing_ok=True)

    def settings(self) -> dict[str, Any]:
        path = self.work / "settings.json"
        if not path.is_file():
            raise DeticError(f"{self.out}: not a `detic label` folder (no {WORK}/settings.json)")
        return json.loads(path.read_text(encoding="utf-8"))

    def write_items(self, keys: list[str]) -> None:
        atomic_write_bytes(self.work / "items.json", json.dumps(keys).encode("utf-8"))

    def items(self) -> list[str]:
        path = self.work / "items.json"
        if not path.is_file():
            raise DeticError(f"{self.out}: not a `detic label` folder (no {WORK}/items.json)")
        return json.loads(path.read_text(encoding="utf-8"))

    def done(self, key: str) -> bool:
        return self.shard_path(key).is_file()

    def write(self, record: dict[str, Any]) -> None:
        atomic_write_bytes(self.shard_path(record["key"]), json.dumps(record).encode("utf-8"))

    def read(self, key: str) -> dict[str, Any]:
        path = self.shard_path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DeticError(f"{path}: unreadable shard ({type(exc).__name__}); delete it and rerun") from exc

    def status(self) -> LabelStatus:
        keys = self.items()
        done = [k for k in keys if self.done(k)]
        return LabelStatus(len(done), len(keys), sum(1 for k in done if "bad" in self.read(k)))


def shard_record(key: str, file: Path, result: Result) -> dict[str, Any]:
    """One input's shard: its key, the picture file to put in the dataset, and `Result.to_dict`'s fields."""
    return {"key": key, "file": str(file), **result.to_dict()}


def result_from_record(record: dict[str, Any], classes: list[str]) -> Result:
    """The Result a shard was made from (masks decoded from their RLE, track ids when tracked), class ids
    indexing `classes`."""
    from detic_cli.data.masks import rle_to_mask

    items = record["instances"]
    masks = None
    if items and all("mask_rle" in i for i in items):
        masks = np.stack([rle_to_mask(i["mask_rle"]) for i in items])
    return Result(boxes=np.asarray([i["box_xyxy"] for i in items], np.float32).reshape(-1, 4),
                  scores=np.asarray([i["score"] for i in items], np.float32),
                  class_ids=np.asarray([i["class_index"] for i in items], np.int64),
                  class_names=[classes[i["class_index"]] for i in items], masks=masks,
                  image_size=(int(record["height"]), int(record["width"])), source=record["file_name"],
                  frame_index=record.get("frame_index"), vocabulary=list(classes),
                  track_ids=np.asarray([i["track_id"] for i in items], np.int64)
                  if items and all("track_id" in i for i in items) else None)
