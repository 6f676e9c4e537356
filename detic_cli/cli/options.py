"""The options several subcommands share, defined once: each factory returns the typer Option to use as a
parameter's default (`device: str = device_option()`), so the flag's name, default and help read the same in
`detect`, `eval`, `cross-eval`, `train`, `serve` and `export`. The `--track*` options (video tracking, in
`detect` and `label`) become a TrackSettings through `track_settings`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer

from detic_cli.errors import DeticError

if TYPE_CHECKING:
    from detic_cli.data.sources import Source
    from detic_cli.engine.tracking import TrackSettings

__all__ = ["AMP_HELP", "amp_option", "backend_option", "batch_size_option", "clip_checkpoint_option",
           "device_option", "input_bucket_option", "mirror_option", "onnx_backend", "onnx_option",
           "track_activation_thresh_option", "track_buffer_option", "track_match_thresh_option",
           "track_min_frames_option", "track_option", "track_settings", "track_thresh_option", "vocab_file_option",
           "vocab_names_option", "vocab_option"]

AMP_HELP = ("off | fp16 | bf16: run the backbone in half precision (faster on GPUs, fp16 slow on CPUs); "
            "detections differ slightly from the original's float32")


def backend_option() -> Any:
    return typer.Option("torch", "--backend", help="torch | onnxruntime (a model from `detic export`, given by "
                                                    "--onnx).")


def onnx_option() -> Any:
    return typer.Option(None, "--onnx", help="The .onnx of `detic export` (--backend onnxruntime).")


def onnx_backend(backend: str, onnx: object | None, torch_only: dict[str, object] | None = None) -> bool:
    """Whether --backend onnxruntime runs an exported model (`onnx`); `torch_only` options (flag -> value) that
    only the PyTorch backend has are refused with it."""
    if backend not in ("torch", "onnxruntime"):
        raise DeticError(f"--backend {backend}: expected torch or onnxruntime")
    if backend == "torch":
        if onnx is not None:
            raise DeticError("--onnx runs with --backend onnxruntime")
        return False
    if onnx is None:
        raise DeticError("--backend onnxruntime needs --onnx MODEL.onnx (made by `detic export`)")
    if given := [name for name, value in (torch_only or {}).items() if value]:
        raise DeticError(f"{given[0]}: not with --backend onnxruntime (the exported model carries its config and "
                         "weights; re-export to change them)")
    return True


def input_bucket_option() -> Any:
    return typer.Option(0, "--input-bucket", min=0, help="Pad every network input to a multiple of N pixels, so a "
                        "stream of sizes runs on a few fixed shapes (CUDA graphs, compiled kernels); detections "
                        "then differ slightly near the padded border. 0 (default): the original's padding.")


def device_option() -> Any:
    return typer.Option("auto", "--device", help="auto | cpu | cuda[:N]")


def amp_option(default: str | None = "off", help: str = AMP_HELP) -> Any:
    return typer.Option(default, "--amp", help=help)


def mirror_option() -> Any:
    return typer.Option(None, "--mirror", help="Base URL or folder standing in for public hosts.")


def batch_size_option(items: str = "Images") -> Any:
    return typer.Option(1, "--batch-size", min=1, help=f"{items} per forward pass.")


def vocab_option(help: str) -> Any:
    return typer.Option(None, "--vocab", help=help)


def vocab_names_option() -> Any:
    return typer.Option(None, "--vocab-names", help="Class names of a .npy, one per line.")


def vocab_file_option() -> Any:
    return typer.Option(None, "--vocab-file", help="Class names, one per line (CLIP-encoded).")


def clip_checkpoint_option() -> Any:
    return typer.Option(None, "--clip-checkpoint", help="Local CLIP weights for names.")


def track_option() -> Any:
    return typer.Option(False, "--track", help="Follow objects across video and webcam frames (ByteTrack): a "
                                               "track_id per detection, #ID in drawn videos; pictures are not "
                                               "tracked. Needs pip install \"detic\\[track]\".")


def track_buffer_option() -> Any:
    return typer.Option(30, "--track-buffer", min=0, help="Frames (at 30 fps, scaled to the video's) a lost "
                                                          "track is kept to be found again.")


def track_thresh_option() -> Any:
    return typer.Option(0.5, "--track-thresh", min=0.0, max=1.0,
                        help="Detections scoring at least this are matched first and start tracks; lower ones "
                             "(down to --threshold) only continue tracks.")


def track_activation_thresh_option() -> Any:
    return typer.Option(None, "--track-activation-thresh", min=0.0, max=1.0,
                        help="Score a new track needs to start (default: --track-thresh).")


def track_match_thresh_option() -> Any:
    return typer.Option(0.1, "--track-match-thresh", min=0.0, max=1.0,
                        help="IoU a detection needs with a track's predicted box to continue it.")


def track_min_frames_option() -> Any:
    return typer.Option(2, "--track-min-frames", min=1, help="Consecutive frames before a new track gets its id "
                                                             "(until then its track_id is -1).")


def track_settings(track: bool, sources: Sequence[Source], *, buffer: int, thresh: float,
                   activation_thresh: float | None, match_thresh: float, min_frames: int) -> TrackSettings | None:
    """The TrackSettings of the --track options (None without --track), checked before a model loads:
    the `trackers` package is installed and some input is a video or a webcam."""
    if not track:
        return None
    from detic_cli.engine.tracking import TrackSettings, check_installed

    if all(src.kind == "image" for src in sources):
        raise DeticError("--track follows objects across video frames: give a video or a webcam (pictures are "
                         "not tracked)")
    check_installed()
    return TrackSettings(buffer=buffer, thresh=thresh, activation_thresh=activation_thresh,
                         match_thresh=match_thresh, min_frames=min_frames)
