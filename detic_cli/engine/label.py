"""One `detic label` run: sources -> resumable per-input shards (engine/label_job.py, label_store.py) -> a
COCO and/or YOLO dataset (engine/label_dataset.py), for the CLI and the Python API alike.

Under `torchrun` every rank labels its share of the sorted inputs; rank 0 checks the folder's settings
before any work, and after a barrier writes the dataset once no input is left. A rerun goes on where an
earlier one stopped; with other settings it is refused (`fresh` starts over).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from detic_cli.engine.class_thresholds import ClassThresholds, parse_class_thresholds
from detic_cli.engine.dist import (
    DistInfo,
    barrier,
    broadcast_object,
    destroy_distributed,
    init_distributed,
    local_device,
)
from detic_cli.engine.label_dataset import FORMATS, DatasetLayout, LabelSummary, parse_split, write_dataset
from detic_cli.engine.label_job import LabelFilters, LabelItem, LabelJob, expand_label_sources, plan_items
from detic_cli.engine.label_store import LabelStatus, LabelStore
from detic_cli.engine.ontology import Ontology, parse_ontology
from detic_cli.engine.predictor import Predictor
from detic_cli.engine.result import Result
from detic_cli.engine.tracking import TrackSettings
from detic_cli.errors import DeticError
from detic_cli.progress import NullProgress, Progress

__all__ = ["LabelOptions", "LabelReport", "label", "label_status"]

FRAME_FORMATS = ("jpg", "png")


@dataclass(frozen=True)
class LabelOptions:
    """What decides the detections (recorded in the folder) and how the dataset is written (free to change
    between runs: the dataset is rewritten from the shards)."""

    threshold: float = 0.5
    class_threshold: str | Mapping[str, float] | None = None
    filters: LabelFilters = field(default_factory=LabelFilters)
    format: str = "coco"
    masks: str = "polygon"
    split: str = "train=1"
    seed: int = 0
    drop_empty: bool = False
    copy_images: bool = False
    every: int = 1
    frame_format: str = "jpg"


@dataclass(frozen=True)
class LabelReport:
    """out: the dataset folder; total/done: inputs in all and with a shard (all ranks); skipped: done by an
    earlier run; labelled: done by this process now; main: rank 0; summary: what the dataset holds (rank 0,
    once every input is done; None before)."""

    out: Path
    total: int
    done: int
    skipped: int
    labelled: int
    main: bool
    summary: LabelSummary | None


def label(sources: Sequence[str], *, out: str | Path, model: str | None = None, config: str | Path | None = None,
          weights: str | Path | None = None, vocab: str | Sequence[str] | None = None,
          vocab_names: str | Path | None = None, vocab_file: str | Path | None = None,
          clip_checkpoint: str | Path | None = None, ontology: str | Mapping[str, Any] | None = None,
          options: LabelOptions = LabelOptions(), device: str = "auto", batch_size: int = 1, amp: str | None = None,
          overrides: Sequence[str] = (), mirror: str | None = None, fresh: bool = False, skip_bad: bool = False,
          max_images: int | None = None, track: TrackSettings | None = None, progress: Progress | None = None,
          on_item: Callable[[LabelItem, Result | None], None] | None = None) -> LabelReport:
    """Label `sources` (pictures, folders, globs, videos, lists of paths) into the dataset folder `out` with a
    zoo `model` (or `config` + `weights`) over `vocab` (each name a class) or the prompts of `ontology`.
    `track`: follow objects across each video's sampled frames (a `track_id` per COCO annotation)."""
    layout, onto, thresholds = _check(options, ontology, vocab, vocab_file, out)
    dist = DistInfo.from_env()
    torch_device = local_device(device, dist)
    items = plan_items(expand_label_sources([str(s) for s in sources]), options.every, skip_bad)
    store = LabelStore(Path(out))
    settings = {"model": model, "config": _path(config), "weights": _path(weights), "vocab": _vocab_word(vocab),
                "vocab_file": _path(vocab_file), "vocab_names": _path(vocab_names), "overrides": list(overrides),
                "amp": amp or "off", **_label_settings(onto, thresholds, options.filters, track)}
    init_distributed(dist, torch_device.type == "cuda")
    problem = store.mismatch(settings, fresh=fresh) if dist.is_main else None
    if dist.is_main and problem is None:
        store.write_items([it.key for it in items])
    if problem := broadcast_object(problem, dist):
        raise DeticError(problem)
    predictor, full = _predictor(onto, vocab, model=model, config=config, weights=weights, vocab_names=vocab_names,
                                 vocab_file=vocab_file, clip_checkpoint=clip_checkpoint, device=str(torch_device),
                                 threshold=thresholds.model_threshold, amp=amp, overrides=overrides, mirror=mirror)
    thresholds.check(list(full.classes))
    job = LabelJob(predictor, items, store, full, thresholds, options.filters, dist, batch_size, max_images,
                   skip_bad, options.frame_format, track, options.every)
    report = _run(job, layout, progress or NullProgress(), on_item)
    destroy_distributed(dist)
    return report


def label_status(out: str | Path) -> tuple[LabelStatus, bool]:
    """(done/total inputs of the folder `out`, whether its dataset is written and current)."""
    store = LabelStore(Path(out))
    status = store.status()
    return status, status.done == status.total and (store.work / "written.json").is_file()


def _check(options: LabelOptions, ontology: str | Mapping[str, Any] | None, vocab: Any, vocab_file: Any,
           out: str | Path) -> tuple[DatasetLayout, Ontology | None, ClassThresholds]:
    """The layout, ontology and thresholds of the options, every one checked before a model loads."""
    from detic_cli.engine.formats import MASK_STYLES

    if options.format not in FORMATS:
        raise DeticError(f"--format {options.format}: expected coco, yolo or both")
    if options.masks not in MASK_STYLES:
        raise DeticError(f"--masks {options.masks}: expected one of {', '.join(MASK_STYLES)}")
    if options.frame_format not in FRAME_FORMATS:
        raise DeticError(f"--frame-format {options.frame_format}: expected jpg or png")
    if options.filters.max_detections is not None and options.filters.max_detections < 1:
        raise DeticError(f"--max-detections {options.filters.max_detections}: must be at least 1")
    if not 0.0 < options.filters.merge_iou <= 1.0:
        raise DeticError(f"--merge-iou {options.filters.merge_iou}: must be in (0, 1]")
    layout = DatasetLayout(Path(out), (), FORMATS[options.format], options.masks, parse_split(options.split),
                           options.seed, options.copy_images, options.drop_empty)
    onto = parse_ontology(ontology)
    if onto is None and vocab is None and vocab_file is None:
        raise DeticError("what should be labelled? give --vocab \"a,b,c\" (each name a class) or --ontology "
                         "\"prompt=class,...\"")
    return layout, onto, parse_class_thresholds(options.class_threshold, options.threshold)


def _predictor(onto: Ontology | None, vocab: Any, **load: Any) -> tuple[Predictor, Ontology]:
    """The loaded predictor and the ontology over its vocabulary: the ontology's prompts unless --vocab (or
    --vocab-file) names the vocabulary, each name its own class without an ontology."""
    from detic_cli.engine.model_setup import load_predictor_parts

    if vocab is None and onto is not None and load["vocab_file"] is None:
        vocab = list(onto.prompts)
    load = {k: (Path(v) if k in ("config", "weights", "vocab_names", "vocab_file", "clip_checkpoint") and v else v)
            for k, v in load.items()}
    predictor = load_predictor_parts(vocab=vocab, **load).predictor
    names = predictor.class_names
    return predictor, onto.over(names) if onto is not None else Ontology.identity(names)


def _run(job: LabelJob, layout: DatasetLayout, progress: Progress,
         on_item: Callable[[LabelItem, Result | None], None] | None) -> LabelReport:
    """This rank's inputs, then (rank 0, every input done) the dataset."""
    dist, keys = job.dist, [it.key for it in job.items]
    skipped = sum(job.store.done(k) for k in keys)
    todo = len(job.pending())
    if skipped and dist.is_main:
        progress.note(f"label: {skipped} of {len(keys)} input(s) already done in {job.store.out}, skipped")
    if dist.is_main and todo:
        progress.start("label", total=todo)

    def advance(item: LabelItem, result: Result | None) -> None:
        progress.advance(1)
        if on_item is not None:
            on_item(item, result)

    try:
        job.run(advance)
    finally:
        progress.finish()
    barrier(dist)
    done = sum(job.store.done(k) for k in keys)
    summary = None
    if dist.is_main and done == len(keys):
        full = DatasetLayout(**{**layout.__dict__, "classes": job.ontology.classes})
        summary = write_dataset(full, [job.store.read(k) for k in keys])
    return LabelReport(job.store.out, len(keys), done, skipped, job.images_done, dist.is_main, summary)


def _label_settings(onto: Ontology | None, thresholds: ClassThresholds, filters: LabelFilters,
                    track: TrackSettings | None) -> dict[str, Any]:
    """The labelling settings a folder's shards depend on (the model's are beside them)."""
    return {"ontology": onto.to_dict() if onto else None, "threshold": thresholds.base,
            "class_threshold": thresholds.per_class, "min_box_area": filters.min_box_area,
            "max_detections": filters.max_detections, "merge_iou": filters.merge_iou,
            "track": asdict(track) if track else None}


def _path(value: str | Path | None) -> str | None:
    return None if value is None else str(Path(value).expanduser().resolve())


def _vocab_word(vocab: str | Sequence[str] | None) -> Any:
    if vocab is None or isinstance(vocab, str):
        return vocab
    return list(vocab)
