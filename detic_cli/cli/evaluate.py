"""`detic eval`: a model on a benchmark -> COCO results, metrics JSON and a table; resumable.

Multi-GPU: `torchrun --nproc-per-node N -m detic_cli eval ...` (each rank evaluates every N-th
image; rank 0 merges and scores). An interrupted run continues where it stopped when rerun with
the same --output-dir.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from detic_cli.cli.app import app
from detic_cli.cli.common import AMP_HELP, inference_amp, model_files, progress_bar, resolve_classifier, resolve_device
from detic_cli.config import CfgNode, load_config
from detic_cli.data.catalog import LAYOUTS, Dataset, resolve_dataset
from detic_cli.engine.evaluate_job import (
    DistInfo,
    EvaluateJob,
    barrier,
    init_distributed,
    iou_types,
    load_ground_truth,
    write_fingerprint,
)
from detic_cli.errors import DeticError

_err = Console(stderr=True, markup=False)  # messages carry paths and user text verbatim
# The built-in vocabulary each evaluator's named datasets are labelled with.
DEFAULT_VOCAB = {"lvis": "lvis", "coco": "coco", "ovcoco": "coco", "objects365": "objects365", "oid": "openimages"}


def _model(row: str | None, config: Path | None, weights: Path | None,
           mirror: str | None) -> tuple[Path, Path, list[str], str]:
    """(config, weights, the row's eval overrides, a short model name)."""
    config_path, weights_path = model_files(row, config, weights, mirror=mirror, flag="--row")
    if row is None:
        return config_path, weights_path, [], config_path.stem
    from detic_cli.zoo.resolve import find_row

    found = find_row(row)
    return config_path, weights_path, list(found.eval_overrides), found.stem


def _dataset(spec: str | None, cfg: CfgNode) -> Dataset:
    if spec is None:
        tests = [t for t in cfg.DATASETS.TEST if t in LAYOUTS]
        if not tests:
            raise DeticError("no --dataset given and the config names no known test dataset; use --dataset "
                             f"{' | '.join(LAYOUTS)} | coco:ANN.json:IMAGES_DIR | lvis:ANN.json:IMAGES_DIR")
        spec = tests[0]
    return resolve_dataset(spec)


def _vocab_spec(vocab: str | None, vocab_file: Path | None, dataset: Dataset) -> str:
    if vocab or vocab_file:
        return vocab or ""
    if dataset.name in LAYOUTS:
        return DEFAULT_VOCAB[dataset.kind]
    raise DeticError(f"--dataset {dataset.name}: give --vocab (class names \"a,b,c\" or a .npy whose rows follow "
                     "the dataset's categories sorted by id, or a built-in name)")


def _embeddings(cfg: CfgNode, dataset: Dataset, num_classes: int, spec: str, vocab_file: Path | None,
                vocab_names: Path | None, clip_checkpoint: Path | None, device: str,
                mirror: str | None) -> tuple[object, list[str] | None, str]:
    """(embeddings, names, source) for an open-vocabulary model; (None, None, "") for a closed one."""
    if cfg.MODEL.META_ARCHITECTURE != "CustomRCNN":
        if spec or vocab_file:
            raise DeticError(f"--vocab: {cfg.MODEL.META_ARCHITECTURE} is a closed-vocabulary model")
        return None, None, ""
    voc = resolve_classifier(cfg, spec, vocab_file=vocab_file, vocab_names=vocab_names,
                             clip_checkpoint=clip_checkpoint, device=device, mirror=mirror)
    if len(voc.names) != num_classes:
        raise DeticError(f"--vocab {vocab_file or spec}: {len(voc.names)} classes, but --dataset {dataset.name} has "
                         f"{num_classes} categories; give one vocabulary row per category, sorted by id")
    return voc.embeddings, voc.names, voc.source


@app.command("eval")
def evaluate(
    overrides: list[str] = typer.Argument(None, help="KEY.PATH=VALUE config overrides."),
    row: str | None = typer.Option(None, "--row", "-m", help="Zoo row or checkpoint name (`detic zoo list`)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Detic YAML (original or project)."),
    weights: Path | None = typer.Option(None, "--weights", "-w", help="Checkpoint in the official layout."),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="Named dataset, coco:ANN.json:IMAGES_DIR or "
                                                                   "lvis:ANN.json:IMAGES_DIR (default: the "
                                                                   "config's DATASETS.TEST)."),
    vocab: str | None = typer.Option(None, "--vocab", help="lvis | objects365 | openimages | coco | \"a,b\" | "
                                                          ".npy (default: the named dataset's own)."),
    vocab_names: Path | None = typer.Option(None, "--vocab-names", help="Class names of a .npy, one per line."),
    vocab_file: Path | None = typer.Option(None, "--vocab-file", help="Class names, one per line (CLIP-encoded)."),
    clip_checkpoint: Path | None = typer.Option(None, "--clip-checkpoint", help="Local CLIP weights for names."),
    output_dir: Path | None = typer.Option(None, "--output-dir", "-o", help="Results, metrics and resumable "
                                                                            "shards (default: eval/MODEL-DATA)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda[:N]"),
    batch_size: int = typer.Option(1, "--batch-size", min=1, help="Images per forward pass."),
    amp: str = typer.Option("off", "--amp", help=AMP_HELP),
    max_images: int | None = typer.Option(None, "--max-images", min=1, help="Stop after N new images (a "
                                                                            "rerun goes on)."),
    fresh: bool = typer.Option(False, "--fresh", help="Drop the shards of an earlier run in --output-dir."),
    mirror: str | None = typer.Option(None, "--mirror", help="Base URL or folder standing in for public hosts."),
) -> None:
    """Evaluate a detector on a benchmark: COCO results, metrics.json and a table."""
    dist = DistInfo.from_env()
    torch_device, amp_dtype = resolve_device(device), inference_amp(amp)
    if dist.world_size > 1 and torch_device.type == "cuda":
        torch_device = resolve_device(f"cuda:{dist.local_rank}")
    config_path, weights_path, row_overrides, model_name = _model(row, config, weights, mirror)
    cfg = load_config(config_path, row_overrides + list(overrides or []))
    data = _dataset(dataset, cfg)
    gt = load_ground_truth(data)
    spec = _vocab_spec(vocab, vocab_file, data) if cfg.MODEL.META_ARCHITECTURE == "CustomRCNN" else (vocab or "")
    emb, names, source = _embeddings(cfg, data, len(gt["categories"]), spec, vocab_file, vocab_names,
                                     clip_checkpoint, str(torch_device), mirror)
    out = output_dir or Path("eval") / f"{model_name}-{Path(data.annotation).stem}"
    types = iou_types(data, gt, bool(cfg.MODEL.MASK_ON))
    init_distributed(dist, torch_device.type == "cuda")
    if dist.is_main:
        write_fingerprint(out, {"config": str(config_path), "weights": str(weights_path), "dataset": data.name,
                                "vocab": source, "overrides": row_overrides + list(overrides or []),
                                "iou_types": types, **({"amp": amp} if amp_dtype else {})}, fresh=fresh)
    barrier(dist)
    from detic_cli.engine.predictor import Predictor

    predictor = Predictor(cfg, weights=weights_path, device=torch_device, embeddings=emb, class_names=names,
                          amp=amp_dtype)
    job = EvaluateJob(predictor, data, gt, out, batch_size=batch_size, with_masks="segm" in types,
                      max_images=max_images, dist=dist)
    _run_with_progress(job, dist)
    barrier(dist)
    if dist.is_main:
        _finish(job, types)


def _run_with_progress(job: EvaluateJob, dist: DistInfo) -> None:
    todo = len(job.pending())
    done = len(job.gt["images"]) - job.missing()
    if done and dist.is_main:
        _err.print(f"eval: {done} image(s) already done in {job.output_dir}, skipped", highlight=False)
    with progress_bar("eval", _err, disable=not dist.is_main or todo == 0) as bar:
        task = bar.add_task("eval", total=todo)
        job.run(on_image=lambda image: bar.advance(task))


def _finish(job: EvaluateJob, types: list[str]) -> None:
    left = job.missing()
    if left:
        _err.print(f"eval: stopped with {left} of {len(job.gt['images'])} image(s) left; rerun the same command "
                   "to go on", highlight=False)
        return
    metrics = job.score(job.merge(), types)
    name = job.dataset.name if job.dataset.name in LAYOUTS else job.dataset.annotation.name
    table = Table(title=f"{name} ({job.dataset.kind})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.2f}")
    Console().print(table)
    _err.print(f"eval: {len(job.gt['images'])} image(s); results {job.output_dir / 'results.json'}, metrics "
               f"{job.output_dir / 'metrics.json'}", highlight=False)
