"""Evaluation during `detic train` (TEST.EVAL_PERIOD > 0): the model being trained on DATASETS.TEST.

As the original `do_test`: each named test dataset is evaluated with MODEL.TEST_CLASSIFIERS[d] when
MODEL.RESET_CLS_TESTS is set, else with the dataset's own built-in vocabulary. The model being trained
runs the evaluation itself (eval mode, no gradients; no second model is built): its training vocabulary,
buffers and train mode are put back afterwards. The one evaluation job (`engine.evaluate.run_job`) writes
the results to `OUTPUT/inference/iter_NNNNNNN/<dataset>/`; the metrics become `<dataset>/<metric>` fields
of a metrics.json line. Datasets and vocabularies are checked when training starts, not when the first
evaluation comes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from detic_cli.data.catalog import LAYOUTS, Dataset, resolve_dataset
from detic_cli.data.paths import dataset_path
from detic_cli.engine.build import EvalSettings
from detic_cli.engine.dist import DistInfo
from detic_cli.engine.evaluate import DEFAULT_VOCAB, run_job
from detic_cli.engine.evaluate_job import EvaluateJob, iou_types, load_ground_truth
from detic_cli.engine.model_setup import classifier_for
from detic_cli.engine.predictor import InputSettings, Predictor
from detic_cli.engine.trainer import EvalFn
from detic_cli.errors import DeticError
from detic_cli.progress import NullProgress

__all__ = ["periodic_eval", "training_state_kept"]


@dataclass
class _Target:
    dataset: Dataset
    gt: dict[str, Any]
    embeddings: np.ndarray | None
    names: list[str] | None
    types: list[str]


def _embeddings(settings: EvalSettings, index: int, dataset: Dataset, device: torch.device,
                mirror: str | None) -> tuple[np.ndarray | None, list[str] | None]:
    if not settings.model.open_vocabulary:
        return None, None
    if settings.test_classifiers is not None:
        if index >= len(settings.test_classifiers):
            raise DeticError(f"MODEL.TEST_CLASSIFIERS has no entry for DATASETS.TEST[{index}] {dataset.name}")
        path = dataset_path(settings.test_classifiers[index])
        if not path.is_file():
            raise DeticError(f"MODEL.TEST_CLASSIFIERS[{index}]: {path} not found")
        return np.load(path).astype(np.float32), None
    voc = classifier_for(settings.model, DEFAULT_VOCAB[dataset.kind], vocab_file=None, vocab_names=None,
                         clip_checkpoint=None, device=str(device), mirror=mirror)
    return np.asarray(voc.embeddings, dtype=np.float32), list(voc.names)


def _target(settings: EvalSettings, index: int, name: str, device: torch.device, mirror: str | None) -> _Target:
    if name not in LAYOUTS:
        raise DeticError(f"TEST.EVAL_PERIOD: DATASETS.TEST {name!r} is not a named evaluation dataset "
                         f"({', '.join(LAYOUTS)}); set TEST.EVAL_PERIOD=0 and run `detic eval` instead")
    dataset = resolve_dataset(name)
    gt = load_ground_truth(dataset)
    embeddings, names = _embeddings(settings, index, dataset, device, mirror)
    if embeddings is not None and len(embeddings) != len(gt["categories"]):
        raise DeticError(f"DATASETS.TEST {name}: the vocabulary has {len(embeddings)} classes, the dataset "
                         f"{len(gt['categories'])} categories")
    return _Target(dataset, gt, embeddings, names, iou_types(dataset, gt, settings.model.mask_on))


@contextmanager
def training_state_kept(model: nn.Module) -> Iterator[None]:
    """Run the block on `model`, then put back what inference may change: each module's train/eval mode, its
    buffers (the very tensors: a vocabulary swap replaces the classifier's buffer) and the class names."""
    modes = [(m, m.training) for m in model.modules()]
    buffers = [(m, name, buf) for m in model.modules() for name, buf in m.named_buffers(recurse=False)]
    names = getattr(model, "class_names", None)
    try:
        yield
    finally:
        for module, name, buf in buffers:
            if getattr(module, name) is not buf:
                setattr(module, name, buf)
        for module, training in modes:
            module.training = training
        if names is not None:
            model.class_names = names


def _evaluate_once(model: nn.Module, targets: list[_Target], inputs: InputSettings, *, folder: Path,
                   device: torch.device, dist: DistInfo) -> dict[str, float]:
    results: dict[str, float] = {}
    with training_state_kept(model):
        for t in targets:
            predictor = Predictor(model, inputs=inputs, device=device, embeddings=t.embeddings, class_names=t.names)
            job = EvaluateJob(predictor, t.dataset, t.gt, folder / t.dataset.name, with_masks="segm" in t.types,
                              dist=dist)
            report = run_job(job, t.types, NullProgress())
            results.update({f"{t.dataset.name}/{k}": float(v) for k, v in report.metrics.items()})
    return results


def periodic_eval(settings: EvalSettings, *, output_dir: Path, device: torch.device, dist: DistInfo,
                  mirror: str | None = None) -> EvalFn | None:
    """The trainer's eval_fn for TEST.EVAL_PERIOD > 0 (None when it is 0): called with the model being trained
    (not wrapped in DDP) on every process, each evaluating its share of the images; rank 0 scores."""
    if settings.eval_period <= 0:
        return None
    if not settings.test_datasets:
        raise DeticError("TEST.EVAL_PERIOD > 0 but DATASETS.TEST is empty")
    targets = [_target(settings, i, name, device, mirror) for i, name in enumerate(settings.test_datasets)]
    inputs = settings.inputs

    def evaluate(model: nn.Module, done: int) -> dict[str, float]:
        return _evaluate_once(model, targets, inputs, folder=output_dir / "inference" / f"iter_{done:07d}",
                              device=device, dist=dist)

    return evaluate
