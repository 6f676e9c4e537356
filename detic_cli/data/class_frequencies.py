"""The class-frequency file of a training vocabulary (MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH) as a tensor.

The federated loss, IGNORE_ZERO_CATS and the dynamic classifier draw classes by how many training
images show them. The model gets a `ClassImageCounts` (a callable giving the counts) and calls it
at its first loss, so inference never needs the file and `modeling/` opens none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from detic_cli.data.paths import dataset_path
from detic_cli.errors import DeticError


def read_class_image_counts(path: str | Path) -> Tensor:
    """(C,) float32 image counts, classes ordered by category id.

    `path` is a JSON list of {"id", "image_count", ...} (e.g. datasets/metadata/lvis_v1_train_cat_info.json),
    already resolved to a filesystem path.
    """
    p = Path(path)
    if not p.is_file():
        raise DeticError(f"class frequency file {p} not found: `detic data prepare lvis-norare` makes it "
                         "(or set MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH)")
    try:
        cat_info = json.loads(p.read_text())
        counts = [float(c["image_count"]) for c in sorted(cat_info, key=lambda c: c["id"])]
    except (ValueError, KeyError, TypeError) as e:
        raise DeticError(f"class frequency file {p} is not a JSON list of {{'id', 'image_count'}} records "
                         f"({e}): regenerate it with `detic data prepare lvis-norare`") from e
    return torch.tensor(counts, dtype=torch.float32)


@dataclass(frozen=True)
class ClassImageCounts:
    """The image counts of one frequency file, read when called; prints as the file's path."""

    path: Path

    def __call__(self) -> Tensor:
        return read_class_image_counts(self.path)

    def __str__(self) -> str:
        return str(self.path)


def class_image_counts(config_path: str) -> ClassImageCounts | None:
    """The counts of a config's CAT_FREQ_PATH (`datasets/...` under $DETIC_DATASETS); None when it is empty."""
    return ClassImageCounts(dataset_path(config_path)) if config_path else None
