"""`detic convert-pretrained`: turn an upstream backbone checkpoint into detector keys, with a report."""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from detic_cli.checkpoint.convert import KINDS, Conversion, backbone_keys, convert_state_dict, fit_to_model
from detic_cli.checkpoint.io import WRITE_SUFFIXES, read_state_dict, write_checkpoint
from detic_cli.cli.app import app
from detic_cli.cli.common import check_writable
from detic_cli.errors import DeticError


def _model_state(config: Path) -> tuple[dict[str, torch.Tensor], bool]:
    """The state dict of the config's model, and its MODEL.RESNETS.STRIDE_IN_1X1."""
    from detic_cli.config import load_config
    from detic_cli.modeling.builders import build_model

    cfg = load_config(config)
    return build_model(cfg).state_dict(), bool(cfg.MODEL.RESNETS.STRIDE_IN_1X1)


def _stride_note(kind: str, stride_in_1x1: bool) -> list[str]:
    """ResNet weights expect the stride where they were trained: caffe2 in the 1x1 conv, torchvision in the 3x3."""
    if kind == "torchvision-resnet" and stride_in_1x1:
        return ["torchvision weights were trained with the stride in the 3x3 conv: set MODEL.RESNETS.STRIDE_IN_1X1 "
                "False (and RGB input) in the config that uses them"]
    if kind == "msra-pkl" and not stride_in_1x1:
        return ["MSRA weights were trained with the stride in the 1x1 conv: set MODEL.RESNETS.STRIDE_IN_1X1 True"]
    return []


def _summary(keys: list[str], limit: int = 4) -> str:
    if not keys:
        return ""
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ": " + ", ".join(keys[:limit]) + more


def report_lines(conv: Conversion, src: Path, dst: Path, checked: bool) -> list[str]:
    lines = [f"{src} -> {dst} (layout {conv.kind})",
             f"  mapped: {len(conv.state)} tensors",
             f"  unused source tensors: {len(conv.unused)}{_summary(conv.unused)}"]
    if checked:
        bb = backbone_keys(conv.random_init)
        lines.append(f"  detector tensors left to random init: {len(conv.random_init)} "
                     f"({len(bb)} in the backbone{_summary(bb)})")
    else:
        lines.append("  detector tensors left to random init: unknown (pass --config to check)")
    return lines + [f"  note: {n}" for n in conv.notes]


@app.command("convert-pretrained")
def convert_pretrained(
    src: Path = typer.Argument(..., help="Upstream checkpoint: .pth/.pt, .safetensors or a legacy .pkl/.pickle."),
    dst: Path = typer.Argument(..., help="Output: .pth ({'model': state_dict}) or .safetensors."),
    kind: str = typer.Option("auto", "--kind", help=f"Source layout: auto, {', '.join(KINDS)}."),
    config: Path = typer.Option(None, "--config", help="Check (and place) the result against this model config."),
) -> None:
    """Convert a pretrained backbone (timm/MIIL ResNet, Swin, ConvNeXt, torchvision or MSRA ResNet) to detector keys."""
    if kind != "auto" and kind not in KINDS:
        raise DeticError(f"--kind {kind}: choose auto or one of {', '.join(KINDS)}")
    if config is not None and not config.is_file():
        raise DeticError(f"--config {config}: file not found")
    if dst.suffix not in WRITE_SUFFIXES:
        raise DeticError(f"{dst}: the output must end in .pth or .safetensors")
    check_writable(dst, "output")
    sd = read_state_dict(src)
    model_state, stride_in_1x1 = _model_state(config) if config is not None else (None, True)
    conv = convert_state_dict(sd, kind, set(model_state) if model_state is not None else None)
    if model_state is not None:
        conv = fit_to_model(conv, model_state)
        conv.notes += _stride_note(conv.kind, stride_in_1x1)
        if not conv.state:
            raise DeticError(f"{src}: no converted tensor fits {config}; check --kind/--config")
    write_checkpoint(conv.state, dst)
    typer.echo("\n".join(report_lines(conv, src, dst, model_state is not None)))
