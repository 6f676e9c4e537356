"""The training side of the one dataset registry (detic_cli/data/catalog.py), under its former module name
for the callers that still import it (engine/train_inputs.py, data/build.py)."""

from __future__ import annotations

from detic_cli.data.catalog import TRAIN_LAYOUTS, TrainDataset, resolve_train_dataset, train_dataset_names

__all__ = ["TRAIN_LAYOUTS", "TrainDataset", "resolve_train_dataset", "train_dataset_names"]
