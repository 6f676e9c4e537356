"""`detic export`: an ONNX model whose vocabulary is a run-time input (see detic_cli/export)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from detic_cli.cli.app import app
from detic_cli.cli.common import check_writable
from detic_cli.cli.options import clip_checkpoint_option, mirror_option, vocab_names_option, vocab_option
from detic_cli.errors import DeticError

_err = Console(stderr=True, markup=False)


def _size(words: tuple[int, int] | None, dynamic: bool) -> tuple[int, int] | None:
    if words is None or words == (None, None):
        return None
    if dynamic:
        raise DeticError("give either --size H W or --dynamic, not both")
    return int(words[0]), int(words[1])


@app.command("export")
def export(
    overrides: list[str] = typer.Argument(None, help="Trailing KEY.PATH=VALUE config overrides."),
    model: str | None = typer.Option(None, "--model", "-m", help="Zoo model name."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Detic YAML (original or project)."),
    weights: Path | None = typer.Option(None, "--weights", "-w", help="Checkpoint in the official layout."),
    fmt: str = typer.Option("onnx", "--format", help="onnx (the only format)."),
    out: Path = typer.Option(..., "--out", "-o", help="The .onnx file to write (its sidecar: OUT.json)."),
    size: tuple[int, int] | None = typer.Option(None, "--size", help="Fixed input height and width (H W)."),
    dynamic: bool = typer.Option(False, "--dynamic", help="Any input height and width (the default)."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (16-20)."),
    no_masks: bool = typer.Option(False, "--no-masks", help="Leave the mask head out of the graph."),
    threshold: float = typer.Option(0.5, "--threshold", "-t", help="Score threshold inside the graph (detect "
                                                                   "may raise it, not lower it)."),
    pred_all_class: bool = typer.Option(False, "--pred-all-class", help="Every class above the threshold per "
                                                                        "box, not only the best."),
    vocab: str | None = vocab_option("Vocabulary of the probe check (default lvis); any vocabulary can be fed at "
                                     "run time."),
    vocab_names: Path | None = vocab_names_option(),
    clip_checkpoint: Path | None = clip_checkpoint_option(),
    probe: Path | None = typer.Option(None, "--probe", help="Picture of the onnxruntime-vs-PyTorch check "
                                                            "(default: a synthetic one)."),
    box_tol: float = typer.Option(0.5, "--box-tolerance", help="Largest box difference (px) the check allows."),
    score_tol: float = typer.Option(1e-3, "--score-tolerance", help="Largest score difference the check allows."),
    mirror: str | None = mirror_option(),
) -> None:
    """Export a model to ONNX, with the class embeddings as an input, checked against PyTorch."""
    from detic_cli.engine.model_setup import model_files
    from detic_cli.export.build import export_model
    from detic_cli.export.export import ExportSettings, describe

    overrides = list(overrides or [])
    if bad := [w for w in overrides if "=" not in w]:
        raise DeticError(f"unexpected argument {bad[0]!r}: export takes options and KEY.PATH=VALUE overrides")
    if fmt != "onnx":
        raise DeticError(f"--format {fmt}: only onnx is supported")
    if out.suffix.lower() != ".onnx":
        raise DeticError(f"--out {out}: give a .onnx file name")
    check_writable(out, "--out")
    settings = ExportSettings(size=_size(size, dynamic), opset=opset, masks=not no_masks, box_tol=box_tol,
                              score_tol=score_tol)
    config_path, weights_path = model_files(model, config, weights, mirror=mirror, flag="--model")
    report = export_model(config=config_path, weights=weights_path, out=out, settings=settings, overrides=overrides,
                          vocab=vocab, vocab_names=vocab_names, clip_checkpoint=clip_checkpoint, probe=probe,
                          threshold=threshold, pred_all_class=pred_all_class, mirror=mirror)
    _err.print(describe(report), highlight=False, soft_wrap=True)
