"""Options and helpers shared by several subcommands: device, model files, vocabulary, progress bars."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from detic_cli.config import CfgNode
from detic_cli.errors import DeticError
from detic_cli.utils import resolve_device

if TYPE_CHECKING:
    from detic_cli.vocab.resolve import Vocabulary

__all__ = ["model_files", "progress_bar", "resolve_classifier", "resolve_device"]


def model_files(name: str | None, config: Path | None, weights: Path | None, *, mirror: str | None,
                flag: str, default: str | None = None) -> tuple[Path, Path]:
    """(config, weights): the pair given by --config/--weights, else the zoo model `name` (or `default`),
    pulled when missing. `flag` is the command's zoo option (--model, --row) for the messages."""
    if config is not None or weights is not None:
        if config is None or weights is None:
            raise DeticError(f"--config and --weights go together (or use {flag} NAME from `detic zoo list`)")
        if name is not None:
            raise DeticError(f"give either {flag} or --config/--weights, not both")
        return config, weights
    if name is None and default is None:
        raise DeticError(f"which model? give {flag} NAME (see `detic zoo list`) or --config YAML --weights PTH")
    from detic_cli.zoo.resolve import resolve_model

    return resolve_model(name or default, mirror=mirror)


def resolve_classifier(cfg: CfgNode, spec: str, *, vocab_file: Path | None, vocab_names: Path | None,
                       clip_checkpoint: Path | None, device: str, mirror: str | None) -> Vocabulary:
    """The Vocabulary of `--vocab SPEC` / `--vocab-file`, checked against the model's embedding size.
    A closed-vocabulary model (Deformable DETR) given a built-in name gets only that vocabulary's class
    names (from the package, no download) to label its own learned classes."""
    from detic_cli.vocab.builtin import is_builtin
    from detic_cli.vocab.resolve import builtin_names, resolve_vocabulary

    if cfg.MODEL.META_ARCHITECTURE != "CustomRCNN" and not vocab_file and is_builtin(spec):
        return _closed_vocabulary(cfg, builtin_names(spec))
    voc = resolve_vocabulary(spec, names_file=str(vocab_names) if vocab_names else None,
                             vocab_file=str(vocab_file) if vocab_file else None,
                             clip_checkpoint=str(clip_checkpoint) if clip_checkpoint else None,
                             device=device, mirror=mirror)
    dim = cfg.MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM
    if cfg.MODEL.META_ARCHITECTURE == "CustomRCNN" and voc.embeddings.shape[1] != dim:
        raise DeticError(f"--vocab {vocab_file or spec}: embeddings have {voc.embeddings.shape[1]} "
                         f"dimensions, this model's classifier takes {dim} (CLIP ViT-B/32 text features)")
    return voc


def _closed_vocabulary(cfg: CfgNode, voc: Vocabulary) -> Vocabulary:
    """`voc` (names only) when it names every class of the closed model's learned classifier."""
    arch = cfg.MODEL.META_ARCHITECTURE
    count = cfg.MODEL.DETR.NUM_CLASSES if arch == "DeformableDetr" else None
    if count is not None and len(voc.names) != count:
        vocab = voc.source.split(":", 1)[1]
        raise DeticError(f"--vocab {vocab}: {arch} has a fixed, learned {count}-class classifier that --vocab cannot "
                         f"change ({vocab} has {len(voc.names)} classes); use --vocab lvis or omit --vocab")
    return voc


def progress_bar(label: str, console: Console, disable: bool = False) -> Progress:
    """A bar with done/total, elapsed time and ETA on `console` (stderr)."""
    columns = [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn()]
    return Progress(*columns, console=console, disable=disable)


INFERENCE_AMP = {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}
AMP_HELP = ("off | fp16 | bf16: run the backbone in half precision (faster on GPUs, fp16 slow on CPUs); "
            "detections differ slightly from the original's float32")


def inference_amp(flag: str) -> torch.dtype | None:
    """The autocast dtype of an --amp word for detect and eval (None: float32 throughout)."""
    if flag not in INFERENCE_AMP:
        raise DeticError(f"--amp {flag}: expected one of {', '.join(INFERENCE_AMP)}")
    return INFERENCE_AMP[flag]


def check_writable(path: Path, flag: str, *, folder: bool = False) -> None:
    """Fail before any work when `path` (a file, or a folder with `folder`) cannot be written."""
    if path.exists() and path.is_dir() != folder:
        raise DeticError(f"{flag} {path}: is a {'file' if folder else 'folder'}; give a "
                         f"{'folder' if folder else 'file name'}")
    ancestor = path if folder and path.is_dir() else path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise DeticError(f"{flag} {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise DeticError(f"{flag} {path}: no permission to write in {ancestor}")
