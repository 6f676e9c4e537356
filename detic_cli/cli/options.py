"""The options several subcommands share, defined once: each factory returns the typer Option to use as a
parameter's default (`device: str = device_option()`), so the flag's name, default and help read the same in
`detect`, `eval`, `cross-eval`, `train`, `serve` and `export`."""

from __future__ import annotations

from typing import Any

import typer

__all__ = ["AMP_HELP", "amp_option", "batch_size_option", "clip_checkpoint_option", "device_option", "mirror_option",
           "vocab_file_option", "vocab_names_option", "vocab_option"]

AMP_HELP = ("off | fp16 | bf16: run the backbone in half precision (faster on GPUs, fp16 slow on CPUs); "
            "detections differ slightly from the original's float32")


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
