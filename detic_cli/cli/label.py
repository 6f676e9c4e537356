"""`detic label`: auto-label pictures and videos into a COCO and/or YOLO dataset; resumable.

Multi-GPU: `torchrun --nproc-per-node N -m detic_cli label ...` (each rank labels every N-th input; rank 0
writes the dataset). An interrupted run continues where it stopped when rerun with the same --out.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from detic_cli.cli.app import app
from detic_cli.cli.common import check_writable
from detic_cli.cli.options import (
    amp_option,
    batch_size_option,
    clip_checkpoint_option,
    device_option,
    mirror_option,
    track_activation_thresh_option,
    track_buffer_option,
    track_match_thresh_option,
    track_min_frames_option,
    track_option,
    track_settings,
    track_thresh_option,
    vocab_file_option,
    vocab_names_option,
    vocab_option,
)
from detic_cli.engine.label import LabelOptions, LabelReport, label_status
from detic_cli.engine.label import label as run_label
from detic_cli.engine.label_job import LabelFilters, LabelItem, expand_label_sources
from detic_cli.engine.result import Result
from detic_cli.errors import DeticError
from detic_cli.progress import BarProgress

_err = Console(stderr=True, markup=False)  # messages carry paths and user text verbatim


@app.command("label")
def label(
    inputs: list[str] = typer.Argument(None, help="Images, folders, globs, videos, text files listing paths, and "
                                                  "trailing KEY.PATH=VALUE config overrides."),
    out: Path | None = typer.Option(None, "--out", "-o", help="The dataset folder (also holds the resumable state "
                                                              "in .label/)."),
    status: Path | None = typer.Option(None, "--status", help="Report how far the labelling of DIR is, and stop."),
    model: str | None = typer.Option(None, "--model", "-m", help="Zoo model name (default: the IN-21K+COCO "
                                                                 "Swin-B model)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Detic YAML (original or project)."),
    weights: Path | None = typer.Option(None, "--weights", "-w", help="Checkpoint in the official layout."),
    vocab: str | None = vocab_option("\"a,b\" | coco | lvis | ... | .npy: the prompts (each its own class "
                                     "without --ontology)."),
    vocab_names: Path | None = vocab_names_option(),
    vocab_file: Path | None = vocab_file_option(),
    clip_checkpoint: Path | None = clip_checkpoint_option(),
    ontology: str | None = typer.Option(None, "--ontology", help="Prompts -> classes: \"milk bottle=bottle,"
                                                                 "bottle cap=cap\" or a YAML/JSON file."),
    fmt: str = typer.Option("coco", "--format", help="coco | yolo | both"),
    masks: str = typer.Option("polygon", "--masks", help="polygon | rle | none: segmentation of mask models."),
    split: str = typer.Option("train=1", "--split", help="Split by a hash of each path, e.g. train=0.8,val=0.2."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split's hash."),
    threshold: float = typer.Option(0.5, "--threshold", "-t", help="Minimum score of a detection."),
    class_threshold: str | None = typer.Option(None, "--class-threshold", help="Per-class thresholds "
                                               "\"bottle=0.3,cap=0.6\" (or a file of them)."),
    min_box_area: float = typer.Option(0.0, "--min-box-area", min=0.0, help="Drop boxes under this many pixels."),
    max_detections: int | None = typer.Option(None, "--max-detections", help="Keep the N best per picture."),
    merge_iou: float = typer.Option(0.5, "--merge-iou", help="IoU of the NMS merging one class's prompts."),
    drop_empty: bool = typer.Option(False, "--drop-empty", help="Leave pictures without detections out (default: "
                                                                "kept as negatives)."),
    copy_images: bool = typer.Option(False, "--copy-images", help="Copy pictures (default: hard links, else "
                                                                  "symbolic links)."),
    every: int = typer.Option(1, "--every", help="Label every N-th video frame."),
    frame_format: str = typer.Option("jpg", "--frame-format", help="jpg | png: files of the video frames."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip unreadable pictures and videos (a warning each)."),
    fresh: bool = typer.Option(False, "--fresh", help="Drop an earlier run's results in --out and start over."),
    max_images: int | None = typer.Option(None, "--max-images", min=1, help="Stop after N new inputs (a rerun "
                                                                            "goes on)."),
    track: bool = track_option(),
    track_buffer: int = track_buffer_option(),
    track_thresh: float = track_thresh_option(),
    track_activation_thresh: float | None = track_activation_thresh_option(),
    track_match_thresh: float = track_match_thresh_option(),
    track_min_frames: int = track_min_frames_option(),
    device: str = device_option(),
    batch_size: int = batch_size_option(),
    amp: str = amp_option(),
    mirror: str | None = mirror_option(),
) -> None:
    """Auto-label pictures and videos into a COCO and/or YOLO dataset."""
    if status is not None:
        return _print_status(status)
    words = list(inputs or [])
    overrides = [w for w in words if "=" in w and not Path(w).exists()]
    sources = [w for w in words if w not in overrides]
    if not sources:
        raise DeticError("no input given: name images, folders, globs, videos or a list of paths")
    if out is None:
        raise DeticError("where should the dataset go? give --out DIR")
    check_writable(out, "--out", folder=True)
    tracking = track_settings(track, expand_label_sources(sources), buffer=track_buffer, thresh=track_thresh,
                              activation_thresh=track_activation_thresh, match_thresh=track_match_thresh,
                              min_frames=track_min_frames)
    options = LabelOptions(threshold=threshold, class_threshold=class_threshold, filters=LabelFilters(
        min_box_area, max_detections, merge_iou), format=fmt, masks=masks, split=split, seed=seed,
        drop_empty=drop_empty, copy_images=copy_images, every=every, frame_format=frame_format)
    report = run_label(sources, out=out, model=model, config=config, weights=weights, vocab=vocab,
                       vocab_names=vocab_names, vocab_file=vocab_file, clip_checkpoint=clip_checkpoint,
                       ontology=ontology, options=options, device=device, batch_size=batch_size, amp=amp,
                       overrides=overrides, mirror=mirror, fresh=fresh, skip_bad=skip_bad, max_images=max_images,
                       track=tracking,
                       progress=BarProgress(_err, unit="items", bars=True, rate="images"), on_item=_warn_bad)
    _print_report(report)


def _warn_bad(item: LabelItem, result: Result | None) -> None:
    if result is None:
        _err.print(f"warning: {item.source.name}: unreadable; skipped", soft_wrap=True)


def _print_status(folder: Path) -> None:
    state, written = label_status(folder)
    bad = f" ({state.bad} skipped as unreadable)" if state.bad else ""
    dataset = "dataset written" if written else "dataset not written yet"
    typer.echo(f"{folder}: {state.done}/{state.total} input(s) labelled{bad}; {dataset}")


def _print_report(report: LabelReport) -> None:
    """Rank 0's account: the inputs left, or what the dataset holds and where."""
    if not report.main:
        return
    if report.summary is None:
        _err.print(f"label: {report.total - report.done} of {report.total} input(s) left; rerun the same command "
                   "to go on", highlight=False, soft_wrap=True)
        return
    s = report.summary
    per_class = ", ".join(f"{name} {count}" for name, count in s.per_class.items())
    splits = ", ".join(f"{name} {count}" for name, count in s.per_split.items())
    _err.print(f"label: {s.images} image(s) in {report.out} ({splits}); detections per class: {per_class}; "
               f"{s.empty} empty image(s){' dropped' if s.dropped else ''}"
               + (f"; {s.bad} unreadable input(s) skipped" if s.bad else ""), highlight=False, soft_wrap=True)
