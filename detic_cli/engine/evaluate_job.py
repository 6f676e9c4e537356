"""Evaluate a predictor on a dataset, resumably: images -> per-image result shards -> metrics.

Layout of the output folder (see DESIGN.md): `shards/<image_id>.json` holds the COCO results of
one image (written atomically, so a crash never leaves a half shard), `run.json` the fingerprint
of the run that owns the shards (a rerun with another model, vocabulary or dataset is refused),
`results.json` every image's results merged, `metrics.json` metric name -> value (`bbox/AP`,
`segm/AP`, ...). A rerun skips the images whose shard exists.

Multi-GPU: under `torchrun` (WORLD_SIZE > 1) each rank takes images `rank::world_size` of the
dataset's image list, writes its shards, and rank 0 merges and scores after a barrier.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detic_cli.data.catalog import Dataset, image_file
from detic_cli.data.image_io import read_image_bgr
from detic_cli.engine.dist import DistInfo
from detic_cli.engine.prefetch import prefetch
from detic_cli.errors import DeticError
from detic_cli.evaluation import dataset_category_ids, evaluate_results, to_coco_results
from detic_cli.evaluation.api import BOX_ONLY
from detic_cli.structures import Instances
from detic_cli.utils import atomic_write_bytes, read_dataset_json

Predict = Callable[[list[np.ndarray]], list[Instances]]
SHARDS = "shards"
FINGERPRINT = "run.json"


def load_ground_truth(dataset: Dataset) -> dict[str, Any]:
    try:
        data = read_dataset_json(dataset.annotation)
    except DeticError as exc:
        raise DeticError(f"--dataset {dataset.name}: {exc}") from None
    if not data["categories"]:
        raise DeticError(f"--dataset {dataset.name}: {dataset.annotation} has no categories")
    return data


def iou_types(dataset: Dataset, gt: dict[str, Any], model_masks: bool) -> list[str]:
    """bbox, plus segm when the model predicts masks and the dataset annotates them."""
    anns = gt.get("annotations") or []
    gt_masks = bool(anns) and all("segmentation" in a for a in anns)
    segm = model_masks and dataset.has_masks and gt_masks and dataset.kind not in BOX_ONLY
    return ["bbox", "segm"] if segm else ["bbox"]


def write_fingerprint(output_dir: Path, fingerprint: dict[str, Any], *, fresh: bool) -> None:
    """Claim `output_dir` for this run; shards of a different run are an error unless `fresh`."""
    path = output_dir / FINGERPRINT
    shards = output_dir / SHARDS
    if fresh and shards.is_dir():
        for old in shards.glob("*.json"):
            old.unlink()
    elif path.is_file() and json.loads(path.read_text()) != fingerprint:
        raise DeticError(f"--output-dir {output_dir}: holds results of another run (model, vocabulary, dataset or "
                         "settings differ); use another folder or --fresh to start over")
    atomic_write_bytes(path, json.dumps(fingerprint, indent=1, sort_keys=True).encode())


@dataclass
class EvaluateJob:
    """Runs `predict` over the dataset images this rank owns that have no shard yet."""

    predict: Predict
    dataset: Dataset
    gt: dict[str, Any]
    output_dir: Path
    batch_size: int = 1
    with_masks: bool = False
    max_images: int | None = None
    dist: DistInfo = field(default_factory=DistInfo)
    images_done: int = 0

    def __post_init__(self) -> None:
        self.category_ids = dataset_category_ids(self.gt)
        self.shard_dir = self.output_dir / SHARDS

    def shard_path(self, image_id: int) -> Path:
        return self.shard_dir / f"{int(image_id)}.json"

    def pending(self) -> list[dict[str, Any]]:
        """This rank's images without a shard, capped at `max_images`."""
        mine = self.gt["images"][self.dist.rank::self.dist.world_size]
        todo = [img for img in mine if not self.shard_path(img["id"]).is_file()]
        return todo if self.max_images is None else todo[:self.max_images]

    def run(self, on_image: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        decoded = ((batch, [read_image_bgr(image_file(self.dataset, img)) for img in batch])
                   for batch in _chunks(self.pending(), self.batch_size))
        with closing(prefetch(decoded, depth=2)) as ahead:  # the next images decode during this forward pass
            for batch, frames in ahead:
                for img, inst in zip(batch, self.predict(frames), strict=True):
                    self._write_shard(img, inst)
                    self.images_done += 1
                    if on_image is not None:
                        on_image(img)

    def _write_shard(self, image: dict[str, Any], inst: Instances) -> None:
        masks = None
        if self.with_masks and inst.has("pred_masks"):
            masks = inst.pred_masks.numpy()
        results = to_coco_results(image["id"], boxes_xyxy=inst.pred_boxes.tensor.numpy(),
                                  scores=inst.scores.numpy(), class_indices=inst.pred_classes.numpy(),
                                  category_ids=self.category_ids, masks=masks)
        atomic_write_bytes(self.shard_path(image["id"]), json.dumps(results).encode())

    def missing(self) -> int:
        """Images of the whole dataset (every rank) that still have no shard."""
        return sum(not self.shard_path(img["id"]).is_file() for img in self.gt["images"])

    def merge(self) -> list[dict[str, Any]]:
        """Every shard, in the dataset's image order, written to `results.json`."""
        results: list[dict[str, Any]] = []
        for img in self.gt["images"]:
            try:
                results.extend(json.loads(self.shard_path(img["id"]).read_text()))
            except (OSError, ValueError) as exc:
                raise DeticError(f"{self.shard_path(img['id'])}: unreadable shard ({type(exc).__name__}); "
                                 "delete it and rerun") from exc
        atomic_write_bytes(self.output_dir / "results.json", json.dumps(results).encode())
        return results

    def score(self, results: list[dict[str, Any]], types: list[str]) -> dict[str, float]:
        """Metrics of every IoU type as `<type>/<name>`, also written to `metrics.json`."""
        metrics: dict[str, float] = {}
        hierarchy = self.dataset.extra.get("hierarchy")
        for iou in types:
            for name, value in _evaluate(self.dataset, self.gt, results, iou, hierarchy).items():
                metrics[f"{iou}/{name}"] = float(value)
        text = json.dumps({k: (None if np.isnan(v) else v) for k, v in metrics.items()}, indent=1)
        atomic_write_bytes(self.output_dir / "metrics.json", text.encode())
        return metrics


def _evaluate(dataset: Dataset, gt: dict[str, Any], results: list[dict[str, Any]], iou: str,
              hierarchy: Path | None) -> dict[str, float]:
    if results and iou == "segm" and any("segmentation" not in r for r in results):
        raise DeticError("some results have no masks; rerun with --fresh")
    return evaluate_results(dataset.kind, gt, results, iou,  # type: ignore[arg-type]
                            oid_hierarchy=hierarchy if dataset.kind == "oid" else None)


def _chunks(items: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
