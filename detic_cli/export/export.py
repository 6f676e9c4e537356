"""Trace a Detic model to ONNX, check it in onnxruntime against PyTorch, write it with its sidecar."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from detic_cli import __version__
from detic_cli.engine.predictor import Predictor
from detic_cli.errors import DeticError
from detic_cli.export.check import Agreement, agreement
from detic_cli.export.onnx_model import ExportableDetic
from detic_cli.export.ort_backend import OrtPredictor, ort_session
from detic_cli.utils import atomic_path

MIN_OPSET = 16  # RoiAlign's coordinate_transformation_mode (half_pixel = torchvision's aligned=True)
MAX_OPSET = 20  # the newest the TorchScript-based exporter writes


@dataclass(frozen=True)
class ExportSettings:
    """`size` (H, W) fixes the image input (None: height and width dynamic); `box_tol` (px) and `score_tol`
    bound the onnxruntime-vs-PyTorch difference on the probe picture."""

    size: tuple[int, int] | None = None
    opset: int = 17
    masks: bool = True
    box_tol: float = 0.5
    score_tol: float = 1e-3
    threads: int = 2


@dataclass(frozen=True)
class ExportReport:
    path: Path
    sidecar: Path
    check: Agreement


def check_settings(settings: ExportSettings) -> None:
    """One-line refusals of unsupported sizes and opsets."""
    if not MIN_OPSET <= settings.opset <= MAX_OPSET:
        raise DeticError(f"--opset {settings.opset}: use {MIN_OPSET} to {MAX_OPSET} (RoiAlign's half_pixel "
                         f"coordinates, torchvision's aligned=True, need opset {MIN_OPSET})")
    if settings.size is not None and min(settings.size) < 32:
        raise DeticError(f"--size {settings.size[0]} {settings.size[1]}: each side must be at least 32 pixels")


def probe_input(predictor: Predictor, probe_bgr: np.ndarray, size: tuple[int, int] | None) -> dict:
    """The probe picture as the predictor prepares it; resized to exactly `size` for a fixed-size export."""
    x = predictor.prepare([probe_bgr])[0]
    if size is not None and tuple(x["image"].shape[-2:]) != size:
        image = F.interpolate(x["image"][None], size=size, mode="bilinear", align_corners=False)[0]
        x = {"image": image.round().clamp(0, 255), "height": size[0], "width": size[1]}
    return x


def _trace(wrapper: ExportableDetic, example: tuple[torch.Tensor, torch.Tensor], path: Path,
           settings: ExportSettings) -> None:
    dynamic = {"class_embeddings": {0: "classes"}}
    dynamic.update({name: {0: "detections"} for name in wrapper.output_names})
    if settings.size is None:
        dynamic["image"] = {2: "height", 3: "width"}
    # traced with autograd on: the CPU fast paths of inference (taken under no_grad) use kernels that have no
    # ONNX counterpart, the plain modules trace to standard ops
    with warnings.catch_warnings(), torch.enable_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(wrapper, example, str(path), input_names=["image", "class_embeddings"],
                              output_names=wrapper.output_names, opset_version=settings.opset,
                              dynamic_axes=dynamic, dynamo=False)
        except Exception as exc:
            raise DeticError(f"the ONNX exporter failed: {str(exc).splitlines()[0] if str(exc) else exc!r}") from exc


def export_onnx(predictor: Predictor, *, out: Path, embeddings: np.ndarray, probe_bgr: np.ndarray,
                settings: ExportSettings, metadata: dict) -> ExportReport:
    """Write `out` (the graph of `predictor`'s model, vocabulary as an input) and `out`.json (`metadata` plus
    the export facts and the check). The graph is run in onnxruntime on the probe beside PyTorch, both with
    the (C, D) `embeddings` (the predictor's vocabulary); beyond the tolerance nothing is written."""
    check_settings(settings)
    try:
        wrapper = ExportableDetic(predictor.model, masks=settings.masks).eval()
    except TypeError as exc:
        raise DeticError(f"cannot export this model yet: {exc}") from exc
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    x = probe_input(predictor, probe_bgr, settings.size)
    sidecar = Path(f"{out}.json")
    with atomic_path(out) as tmp:
        _trace(wrapper, (x["image"][None].float(), torch.from_numpy(embeddings)), tmp, settings)
        ort = OrtPredictor(ort_session(tmp, threads=settings.threads), inputs=predictor.inputs,
                           pixel_mean=predictor.model.pixel_mean.flatten().tolist(), size=settings.size,
                           embeddings=embeddings, class_names=predictor.class_names)
        with torch.no_grad():
            ref = predictor.model.inference([x], do_postprocess=False)[0].to("cpu")
        check = agreement(ref, ort.network_detections(x), threshold=predictor.model.roi_heads.score_thresh)
        if not check.within(settings.box_tol, settings.score_tol):
            raise DeticError(f"onnxruntime disagrees with PyTorch on the probe picture beyond the tolerance "
                             f"({_describe(check)}; tolerance {settings.box_tol} px, {settings.score_tol}); "
                             f"{out} not written")
        record = {**metadata, **_export_facts(wrapper, settings, check)}
        with atomic_path(sidecar) as side:
            side.write_text(json.dumps(record, indent=2) + "\n")
    return ExportReport(path=out, sidecar=sidecar, check=check)


def _describe(check: Agreement) -> str:
    return (f"{check.reference} PyTorch / {check.exported} onnxruntime detections, {check.unmatched} unmatched, "
            f"max box difference {check.max_box_diff:.4g} px, max score difference {check.max_score_diff:.3g}")


def describe(report: ExportReport) -> str:
    """One line on what was written and how close it is to PyTorch."""
    return f"exported {report.path} (+ {report.sidecar.name}); probe check: {_describe(report.check)}"


def _export_facts(wrapper: ExportableDetic, settings: ExportSettings, check: Agreement) -> dict:
    import onnx
    import onnxruntime

    heads = wrapper.model.roi_heads
    return {
        "input_size": list(settings.size) if settings.size else None,
        "dynamic": settings.size is None,
        "opset": settings.opset,
        "inputs": {"image": "float32 (1, 3, H, W), 0-255, channel_order, resized as the config's "
                            "MIN_SIZE_TEST/MAX_SIZE_TEST", "class_embeddings": "float32 (C, D)"},
        "outputs": wrapper.output_names,
        "masks": wrapper.masks,
        "mask_size": heads.mask_pooler.output_size[0] * 2 if wrapper.masks else None,
        "exporter": {"detic": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "method": "torch.onnx.export(dynamo=False)"},
        "check": {**check.as_dict(), "box_tolerance_px": settings.box_tol, "score_tolerance": settings.score_tol},
    }
