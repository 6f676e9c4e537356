"""The class-frequency file of a training vocabulary (MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH) as a tensor.

The federated loss, IGNORE_ZERO_CATS and the dynamic classifier draw classes by how many training
images show them. The engine reads the file here when it builds a model for training and hands the
counts to the model builder (`ModelData.class_counts`): inference never needs the file and `modeling/`
opens none.
"""

from __future__ import annotations

import json
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


def class_image_counts(config_path: str) -> Tensor | None:
    """The (C,) float32 counts of a config's CAT_FREQ_PATH (`datasets/...` under $DETIC_DATASETS); None when the
    path is empty. DeticError when the file is missing or malformed."""
    return read_class_image_counts(dataset_path(config_path)) if config_path else None
