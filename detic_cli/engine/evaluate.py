"""One evaluation job under `detic eval`, `detic cross-eval` and `detic_cli.evaluate`: a detector on a
benchmark -> resumable per-image shards, results.json and metrics.json in an output folder (the folder's
layout and the rank split: engine/evaluate_job.py). A call goes on where an earlier one in the same folder
stopped; `fresh` starts over.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detic_cli.config import load_config
from detic_cli.data.catalog import LAYOUTS, Dataset, resolve_dataset
from detic_cli.engine.build import EvalSettings, ModelFacts, eval_settings
from detic_cli.engine.dist import DistInfo, barrier, init_distributed, local_device
from detic_cli.engine.evaluate_job import EvaluateJob, iou_types, load_ground_truth, write_fingerprint
from detic_cli.engine.model_setup import (
    VocabSpec,
    classifier_for,
    inference_amp,
    model_files,
    predictor_from_config,
    vocabulary_for,
)
from detic_cli.errors import DeticError
from detic_cli.progress import NullProgress, Progress

__all__ = ["DEFAULT_VOCAB", "EvalReport", "PrebuiltModel", "evaluate"]

# The built-in vocabulary each evaluator's named datasets are labelled with.
DEFAULT_VOCAB = {"lvis": "lvis", "coco": "coco", "ovcoco": "coco", "objects365": "objects365", "oid": "openimages"}


@dataclass(frozen=True)
class EvalReport:
    """What one evaluation call did.

    dataset: the benchmark; output_dir: its folder (shards/, run.json, results.json, metrics.json);
    iou_types: ("bbox",) or ("bbox", "segm"); images: the dataset's image count; skipped: images an earlier
    call had already done; left: images still without results (> 0 after `max_images`); main: this process
    is rank 0 (the one that merges and scores under torchrun). metrics: `<iou type>/<metric>` -> value, as
    in metrics.json (`bbox/AP`, `bbox/AP50`, `segm/AP`, ...; NaN where the evaluator has no number); empty
    while images are left and on the other ranks.
    """

    dataset: Dataset
    output_dir: Path
    iou_types: tuple[str, ...]
    images: int
    skipped: int
    left: int
    main: bool
    metrics: dict[str, float]


@dataclass(frozen=True)
class _Model:
    config: Path
    weights: Path
    overrides: list[str]  # the zoo row's eval overrides, then the caller's
    name: str  # names the default output folder


@dataclass(frozen=True)
class PrebuiltModel:
    """A model made outside the engine (an exported graph, by `detic_cli.export`), evaluated instead of a config
    + checkpoint: `path` names it (fingerprint, default output folder, `flag` in refusals), `cfg` holds its
    recorded settings, `fingerprint` extra facts for the run's record, `note` one line shown before the run,
    and `make_predictor(embeddings (C, D) or None, class names or None, device)` its predictor."""

    path: Path
    flag: str
    cfg: Any
    fingerprint: dict[str, Any]
    note: str | None
    make_predictor: Callable[[np.ndarray | None, list[str] | None, str], Any]


@dataclass(frozen=True)
class _Classifier:
    embeddings: np.ndarray | None
    names: list[str] | None
    source: str  # the vocabulary's part of the run's fingerprint


def evaluate(*, model: str | None = None, config: str | Path | None = None, weights: str | Path | None = None,
             dataset: str | Dataset | None = None, vocab: VocabSpec = None, names: Sequence[str] | None = None,
             vocab_names: str | Path | None = None, vocab_file: str | Path | None = None,
             clip_checkpoint: str | Path | None = None, output_dir: str | Path | None = None, device: str = "auto",
             batch_size: int = 1, amp: str | None = None, max_images: int | None = None, fresh: bool = False,
             overrides: Sequence[str] = (), mirror: str | None = None, prebuilt: PrebuiltModel | None = None,
             progress: Progress | None = None) -> EvalReport:
    """Evaluate a zoo `model` (or `config` + `weights`) on `dataset` (a named dataset, `coco:ANN:IMAGES`,
    `lvis:ANN:IMAGES` or a Dataset; default the config's DATASETS.TEST) with `vocab` (a --vocab word, class
    names, a (C, D) array labelled by `names`, or a Vocabulary; default the named dataset's own), one row per
    category sorted by id. `output_dir` defaults to eval/MODEL-ANNOTATION. `progress` hears of skipped
    images and of each image done. `prebuilt` (e.g. `export.exported_eval_model`: an onnxruntime graph with
    its recorded config, the vocabulary as its input) is evaluated instead of model/config/weights."""
    if batch_size < 1 or (max_images is not None and max_images < 1):
        raise DeticError(f"batch size {batch_size}, max images {max_images}: each must be at least 1")
    dist = DistInfo.from_env()
    torch_device, amp_dtype = local_device(device, dist), inference_amp(amp)
    if prebuilt is not None:
        _refuse_with_prebuilt(prebuilt, model=model, config=config, weights=weights, amp=amp)
        files = _Model(prebuilt.path, prebuilt.path, list(overrides), prebuilt.path.stem)
    else:
        files = _model_files(model, config, weights, mirror, list(overrides))
    cfg = prebuilt.cfg if prebuilt else load_config(files.config, files.overrides)
    settings = eval_settings(cfg)
    data = dataset if isinstance(dataset, Dataset) else _dataset(dataset, settings)
    gt = load_ground_truth(data)
    classifier = _classifier(settings.model, data, len(gt["categories"]), vocab, names=names, vocab_file=vocab_file,
                             vocab_names=vocab_names, clip_checkpoint=clip_checkpoint, device=str(torch_device),
                             mirror=mirror)
    out = Path(output_dir) if output_dir is not None else Path("eval") / f"{files.name}-{data.annotation.stem}"
    types = iou_types(data, gt, settings.model.mask_on)
    init_distributed(dist, torch_device.type == "cuda")
    if dist.is_main:
        write_fingerprint(out, {"config": str(files.config), "weights": str(files.weights), "dataset": data.name,
                                "vocab": classifier.source, "overrides": files.overrides, "iou_types": types,
                                **({"amp": amp} if amp_dtype else {}),
                                **(prebuilt.fingerprint if prebuilt else {})},
                          fresh=fresh)
    barrier(dist)
    progress = progress or NullProgress()
    if prebuilt:
        if dist.is_main and prebuilt.note:
            progress.note(prebuilt.note)
        predictor = prebuilt.make_predictor(classifier.embeddings, classifier.names, str(torch_device))
    else:
        predictor = predictor_from_config(cfg, weights=files.weights, device=torch_device,
                                          embeddings=classifier.embeddings, class_names=classifier.names,
                                          amp=amp_dtype)
    job = EvaluateJob(predictor, data, gt, out, batch_size=batch_size, with_masks="segm" in types,
                      max_images=max_images, dist=dist)
    return run_job(job, types, progress)


def run_job(job: EvaluateJob, types: list[str], progress: Progress) -> EvalReport:
    """Run `job` (this rank's images), then on rank 0 merge and score once no image is left."""
    dist, images = job.dist, len(job.gt["images"])
    skipped, todo = images - job.missing(), len(job.pending())
    if skipped and dist.is_main:
        progress.note(f"eval: {skipped} image(s) already done in {job.output_dir}, skipped")
    if todo and dist.is_main:
        progress.start("eval", total=todo)
    try:
        job.run(on_image=lambda image: progress.advance(1))
    finally:
        progress.finish()
    barrier(dist)
    left = job.missing()
    metrics = job.score(job.merge(), types) if dist.is_main and not left else {}
    return EvalReport(job.dataset, job.output_dir, tuple(types), images, skipped, left, dist.is_main, metrics)


def _model_files(row: str | None, config: str | Path | None, weights: str | Path | None, mirror: str | None,
                 overrides: list[str]) -> _Model:
    config_path, weights_path = model_files(row, Path(config) if config is not None else None,
                                            Path(weights) if weights is not None else None, mirror=mirror,
                                            flag="--row")
    if row is None:
        return _Model(config_path, weights_path, overrides, config_path.stem)
    from detic_cli.zoo.resolve import find_row

    found = find_row(row)
    return _Model(config_path, weights_path, list(found.eval_overrides) + overrides, found.stem)


def _refuse_with_prebuilt(prebuilt: PrebuiltModel, **given: object) -> None:
    """Options only a config + checkpoint has are refused with a prebuilt model."""
    flags = {"model": "--row", "config": "--config", "weights": "--weights", "amp": "--amp"}
    for key, value in given.items():
        if value is not None and not (key == "amp" and value == "off"):
            raise DeticError(f"{flags[key]}: not with {prebuilt.flag} (the exported model carries its config and "
                             "weights; re-export to change them)")


def _dataset(spec: str | None, settings: EvalSettings) -> Dataset:
    if spec is None:
        tests = [t for t in settings.test_datasets if t in LAYOUTS]
        if not tests:
            raise DeticError("no --dataset given and the config names no known test dataset; use --dataset "
                             f"{' | '.join(LAYOUTS)} | coco:ANN.json:IMAGES_DIR | lvis:ANN.json:IMAGES_DIR")
        spec = tests[0]
    return resolve_dataset(spec)


def _given(vocab: VocabSpec) -> bool:
    return vocab is not None and not (isinstance(vocab, str) and not vocab)


def _classifier(model: ModelFacts, dataset: Dataset, num_classes: int, vocab: VocabSpec, *, names: Sequence[str] | None,
                vocab_file: str | Path | None, vocab_names: str | Path | None, clip_checkpoint: str | Path | None,
                device: str, mirror: str | None) -> _Classifier:
    """The open-vocabulary model's classifier, one row per dataset category; nothing for a closed model."""
    if not model.open_vocabulary:
        if _given(vocab) or vocab_file:
            raise DeticError(f"--vocab: {model.arch} is a closed-vocabulary model")
        return _Classifier(None, None, "")
    paths: dict[str, Any] = {"vocab_file": Path(vocab_file) if vocab_file else None,
                             "vocab_names": Path(vocab_names) if vocab_names else None,
                             "clip_checkpoint": Path(clip_checkpoint) if clip_checkpoint else None}
    if vocab is None or isinstance(vocab, str):
        spec = _vocab_spec(vocab, vocab_file, dataset)
        voc = classifier_for(model, spec, device=device, mirror=mirror, **paths)
        label, source = str(vocab_file or spec), voc.source
    else:  # names, an array or a Vocabulary: the fingerprint holds a digest of the table itself
        voc = vocabulary_for(model, vocab, names=names, device=device, mirror=mirror, **paths)
        table = np.ascontiguousarray(voc.embeddings, dtype=np.float32)
        label, source = voc.source, f"{voc.source}:sha256:{hashlib.sha256(table.tobytes()).hexdigest()[:16]}"
    if len(voc.names) != num_classes:
        raise DeticError(f"--vocab {label}: {len(voc.names)} classes, but --dataset {dataset.name} has "
                         f"{num_classes} categories; give one vocabulary row per category, sorted by id")
    return _Classifier(voc.embeddings, voc.names, source)


def _vocab_spec(vocab: str | None, vocab_file: str | Path | None, dataset: Dataset) -> str:
    if vocab or vocab_file:
        return vocab or ""
    if dataset.name in LAYOUTS:
        return DEFAULT_VOCAB[dataset.kind]
    raise DeticError(f"--dataset {dataset.name}: give --vocab (class names \"a,b,c\" or a .npy whose rows follow "
                     "the dataset's categories sorted by id, or a built-in name)")
