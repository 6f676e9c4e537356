"""`detic detect`: run a detector on images, folders, globs, videos or a webcam."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from detic_cli.cli.app import app
from detic_cli.cli.common import check_writable
from detic_cli.cli.display import Window, display_problem
from detic_cli.cli.options import (
    amp_option,
    backend_option,
    batch_size_option,
    clip_checkpoint_option,
    device_option,
    input_bucket_option,
    mirror_option,
    onnx_backend,
    onnx_option,
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
from detic_cli.data.sources import Source, expand_inputs
from detic_cli.engine.detect_job import DetectJob, OutputPlan, Sink, count_frames
from detic_cli.engine.model_setup import inference_amp, load_predictor
from detic_cli.engine.outputs import CropWriter, JsonlWriter, YoloWriter
from detic_cli.errors import DeticError
from detic_cli.progress import progress_bar

_err = Console(stderr=True, markup=False)  # messages carry paths and user text verbatim


@app.command("detect")
def detect(
    inputs: list[str] = typer.Argument(..., help="Images, folders, globs, videos, a webcam index (0), and "
                                                 "trailing KEY.PATH=VALUE config overrides."),
    model: str | None = typer.Option(None, "--model", "-m", help="Zoo model name (default: the IN-21K+COCO "
                                                                 "Swin-B model)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Detic YAML (original or project)."),
    weights: Path | None = typer.Option(None, "--weights", "-w", help="Checkpoint in the official layout."),
    vocab: str | None = vocab_option("lvis (default) | objects365 | openimages | coco | \"a,b\" | embeddings .npy"),
    vocab_names: Path | None = vocab_names_option(),
    vocab_file: Path | None = vocab_file_option(),
    clip_checkpoint: Path | None = clip_checkpoint_option(),
    threshold: float = typer.Option(0.5, "--threshold", "-t", help="Minimum score of a detection."),
    pred_all_class: bool = typer.Option(False, "--pred-all-class", help="Keep every class above the threshold "
                                                                        "per box, not only the best."),
    device: str = device_option(),
    batch_size: int = batch_size_option("Frames"),
    amp: str = amp_option(),
    output: Path | None = typer.Option(None, "--output", "-o", help="Folder, or a file for a single input."),
    json_path: Path | None = typer.Option(None, "--json", help="Write detections as JSON."),
    max_frames: int | None = typer.Option(None, "--max-frames", min=1, help="Stop each video/webcam after N "
                                                                            "frames."),
    show: bool = typer.Option(False, "--show", help="Show results in a window (q or Esc stops; needs a display "
                                                    "and OpenCV with a GUI)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip unreadable pictures and videos (a warning each) "
                                                            "instead of stopping at the first."),
    mirror: str | None = mirror_option(),
    jsonl: str | None = typer.Option(None, "--jsonl", help="Stream one JSON record per picture or frame to FILE "
                                                           "(- for stdout) as each is produced."),
    save_txt: bool = typer.Option(False, "--save-txt", help="YOLO label files (class cx cy w h, relative) in "
                                                            "OUTPUT/labels, one per picture or frame."),
    save_crops: Path | None = typer.Option(None, "--save-crops", help="One crop per detection in DIR/<class>/."),
    class_threshold: str | None = typer.Option(None, "--class-threshold", help="Per-class thresholds "
                                               "\"person=0.3,traffic light=0.6\" (or a file of them); other "
                                               "classes keep --threshold."),
    embeddings: bool = typer.Option(False, "--embeddings", help="Add each detection's classifier-space embedding "
                                                                "(D=512) to the JSON/JSON Lines records."),
    backend: str = backend_option(),
    onnx: Path | None = onnx_option(),
    input_bucket: int = input_bucket_option(),
    track: bool = track_option(),
    track_buffer: int = track_buffer_option(),
    track_thresh: float = track_thresh_option(),
    track_activation_thresh: float | None = track_activation_thresh_option(),
    track_match_thresh: float = track_match_thresh_option(),
    track_min_frames: int = track_min_frames_option(),
) -> None:
    """Detect objects of any vocabulary in pictures and videos."""
    overrides = [w for w in inputs if "=" in w and not Path(w).exists()]
    sources = expand_inputs([w for w in inputs if w not in overrides])
    if not sources:
        raise DeticError("no input given: name images, folders, globs, videos or a webcam index")
    inference_amp(amp)
    tracking = track_settings(track, sources, buffer=track_buffer, thresh=track_thresh,
                              activation_thresh=track_activation_thresh, match_thresh=track_match_thresh,
                              min_frames=track_min_frames)
    plan = _output_plan(sources, output, json_path)
    sinks = _sinks(sources, output, plan, jsonl, save_txt, save_crops)
    given = len(sources)
    unopened: list[Source] = []
    total = count_frames(sources, max_frames, on_skip=_skip_unopened(unopened) if skip_bad else None)
    if unopened:
        sources = [src for src in sources if src not in unopened]
        if not sources:
            raise DeticError("no readable input: every video or camera failed to open")
    if show and (problem := display_problem()):
        raise DeticError(f"--show: {problem}")
    common = dict(vocab=vocab, vocab_names=vocab_names, vocab_file=vocab_file, clip_checkpoint=clip_checkpoint,
                  threshold=threshold, class_thresholds=class_threshold, pred_all_class=pred_all_class,
                  device=device, mirror=mirror)
    if onnx_backend(backend, onnx, torch_only={"--model": model, "--config": config, "--weights": weights,
                                                "--amp": amp != "off", "--embeddings": embeddings,
                                                "--input-bucket": input_bucket}):
        from detic_cli.export.build import load_ort_predictor

        predictor, thresholds = load_ort_predictor(onnx=onnx, overrides=overrides, **common)
    else:
        predictor, thresholds = load_predictor(model=model, config=config, weights=weights, overrides=overrides,
                                               amp=amp, embeddings=embeddings, input_bucket=input_bucket, **common)
    window = Window() if show else None
    job = DetectJob(predictor, sources, plan=plan, json_path=json_path, batch_size=batch_size,
                    max_frames=max_frames, show=window, sinks=[make() for make in sinks], thresholds=thresholds,
                    track=tracking)
    try:
        skipped = given - len(sources) + _run_with_progress(job, total, skip_bad)
    finally:
        if window is not None:
            window.close()
    _err.print(f"detect: {job.frames_done} frame(s) from {given} input(s)"
               + (f"; {skipped} unreadable input(s) skipped" if skipped else "")
               + (f"; JSON {json_path}" if json_path else "") + (f"; JSON Lines {jsonl}" if jsonl else "")
               + (f"; pictures in {output}" if output else ""),
               highlight=False, soft_wrap=True)


def _sinks(sources: list[Source], output: Path | None, plan: OutputPlan, jsonl: str | None, save_txt: bool,
           save_crops: Path | None) -> list[Callable[[], Sink]]:
    """The extra writers (made once the model is loaded), checked now: --jsonl, --save-txt, --save-crops."""
    makers: list[Callable[[], Sink]] = []
    if jsonl is not None:
        if jsonl != "-":
            path = Path(jsonl)
            check_writable(path, "--jsonl")
            if any(path.resolve() == Path(s.location).resolve() for s in sources if s.kind != "webcam"):
                raise DeticError(f"--jsonl {jsonl}: is one of the inputs; choose another file name")
        makers.append(lambda: JsonlWriter(jsonl))
    if save_txt:
        if output is None:
            raise DeticError("--save-txt writes OUTPUT/labels: give --output DIR (or a file, for labels beside it)")
        labels = (output.parent if output in plan.targets.values() else output) / "labels"
        check_writable(labels, "--save-txt", folder=True)
        makers.append(lambda: YoloWriter(labels))
    if save_crops is not None:
        check_writable(save_crops, "--save-crops", folder=True)
        makers.append(lambda: CropWriter(save_crops))
    return makers


def _skip_unopened(unopened: list[Source]) -> Callable[[Source, str], None]:
    """--skip-bad: a video or camera that does not open is warned about and remembered."""
    def skip(src: Source, message: str) -> None:
        unopened.append(src)
        _err.print(f"warning: {message}; skipped", soft_wrap=True)
    return skip


def _output_plan(sources: list[Source], output: Path | None, json_path: Path | None) -> OutputPlan:
    """Where results go, checked before the model loads: writable, and never over an input."""
    plan = OutputPlan.make(sources, output)
    if output is not None:
        check_writable(output, "--output", folder=output not in plan.targets.values())
    if json_path is not None:
        check_writable(json_path, "--json")
        if any(json_path.resolve() == Path(s.location).resolve() for s in sources if s.kind != "webcam"):
            raise DeticError(f"--json {json_path}: is one of the inputs; choose another file name")
    return plan


def _run_with_progress(job: DetectJob, total: int | None, skip_bad: bool) -> int:
    """Run `job` under a progress bar; returns how many inputs --skip-bad passed over."""
    skipped: list[Source] = []

    def skip(src: Source, message: str) -> None:
        skipped.append(src)
        _err.print(f"warning: {message}; skipped", soft_wrap=True)
        bar.advance(task)

    with progress_bar("detect", _err, disable=total is not None and total <= 1) as bar:
        task = bar.add_task("detect", total=total)
        try:
            job.run(on_frame=lambda frame, inst: bar.advance(task), on_skip=skip if skip_bad else None)
        except DeticError as exc:
            if not job.frames_done or not job.writes:
                raise
            raise DeticError(f"{exc} (the {job.frames_done} frame(s) before it are written)") from exc
        except KeyboardInterrupt:
            done = "; their results are written" if job.writes else ""
            _err.print(f"detect: interrupted after {job.frames_done} frame(s){done}")
            raise
    return len(skipped)
