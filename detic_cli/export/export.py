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
from detic_cli.export.onnx_detr import ExportableDetr
from detic_cli.export.onnx_model import ExportableDetic
from detic_cli.export.ort_backend import OrtPredictor, ort_session
from detic_cli.modeling.detr.meta_arch import DeformableDetr
from detic_cli.structures import Instances
from detic_cli.utils import atomic_path

MIN_OPSET = 16  # RoiAlign's coordinate_transformation_mode (half_pixel = torchvision's aligned=True)
MAX_OPSET = 20  # the newest the TorchScript-based exporter writes


DETR_NEEDS_SIZE = ("Deformable DETR exports at one fixed input size (its level shapes are fixed when traced): "
                   "give --size H W")


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


def _trace(wrapper: ExportableDetic | ExportableDetr, example: tuple[torch.Tensor, ...], path: Path,
           settings: ExportSettings) -> None:
    dynamic = {"class_embeddings": {0: "classes"}} if "class_embeddings" in wrapper.input_names else {}
    dynamic.update({name: {0: "detections"} for name in wrapper.output_names})
    if settings.size is None:
        dynamic["image"] = {2: "height", 3: "width"}
    # traced with autograd on: the CPU fast paths of inference (taken under no_grad) use kernels that have no
    # ONNX counterpart, the plain modules trace to standard ops
    with warnings.catch_warnings(), torch.enable_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(wrapper, example, str(path), input_names=wrapper.input_names,
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
    wrapper = exportable(predictor.model, settings)
    closed = isinstance(wrapper, ExportableDetr)
    vocab = None if closed else np.ascontiguousarray(embeddings, dtype=np.float32)
    x = probe_input(predictor, probe_bgr, settings.size)
    example = (x["image"][None].float(),) if closed else (x["image"][None].float(), torch.from_numpy(vocab))
    sidecar = Path(f"{out}.json")
    with atomic_path(out) as tmp:
        _trace(wrapper, example, tmp, settings)
        ort = OrtPredictor(ort_session(tmp, threads=settings.threads), inputs=predictor.inputs,
                           pixel_mean=predictor.model.pixel_mean.flatten().tolist(), size=settings.size,
                           embeddings=vocab, class_names=predictor.class_names, clip=not closed)
        ref, threshold = _reference(predictor, x, closed)
        check = agreement(ref, ort.network_detections(x), threshold=threshold)
        if not check.within(settings.box_tol, settings.score_tol):
            raise DeticError(f"onnxruntime disagrees with PyTorch on the probe picture beyond the tolerance "
                             f"({_describe(check)}; tolerance {settings.box_tol} px, {settings.score_tol}); "
                             f"{out} not written")
        record = {**metadata, **_export_facts(wrapper, settings, check)}
        with atomic_path(sidecar) as side:
            side.write_text(json.dumps(record, indent=2) + "\n")
    return ExportReport(path=out, sidecar=sidecar, check=check)


def exportable(model: torch.nn.Module, settings: ExportSettings) -> ExportableDetic | ExportableDetr:
    """The traceable wrapper of `model` (a CustomRCNN of an exportable family, or Deformable DETR)."""
    if isinstance(model, DeformableDetr):
        if settings.size is None:
            raise DeticError(DETR_NEEDS_SIZE)
        return ExportableDetr(model).eval()
    try:
        return ExportableDetic(model, masks=settings.masks).eval()
    except TypeError as exc:
        raise DeticError(f"cannot export this model yet: {exc}") from exc


def _reference(predictor: Predictor, x: dict, closed: bool) -> tuple[Instances, float]:
    """PyTorch's detections of the prepared probe `x` in network-input pixels, and the score threshold they
    were cut at (Deformable DETR has none: its top-k is the whole output)."""
    size = tuple(int(s) for s in x["image"].shape[-2:])
    with torch.no_grad():
        if closed:
            result = predictor.model.inference([{**x, "height": size[0], "width": size[1]}])[0]["instances"]
            return result.to("cpu"), 0.0
        ref = predictor.model.inference([x], do_postprocess=False)[0].to("cpu")
    return ref, predictor.model.roi_heads.score_thresh


def _describe(check: Agreement) -> str:
    return (f"{check.reference} PyTorch / {check.exported} onnxruntime detections, {check.unmatched} unmatched, "
            f"max box difference {check.max_box_diff:.4g} px, max score difference {check.max_score_diff:.3g}")


def describe(report: ExportReport) -> str:
    """One line on what was written and how close it is to PyTorch."""
    return f"exported {report.path} (+ {report.sidecar.name}); probe check: {_describe(report.check)}"


def _export_facts(wrapper: ExportableDetic | ExportableDetr, settings: ExportSettings, check: Agreement) -> dict:
    import onnx
    import onnxruntime

    closed = isinstance(wrapper, ExportableDetr)
    return {
        "input_size": list(settings.size) if settings.size else None,
        "dynamic": settings.size is None,
        "opset": settings.opset,
        "inputs": {"image": "float32 (1, 3, H, W), 0-255, channel_order, resized as the config's "
                            "MIN_SIZE_TEST/MAX_SIZE_TEST",
                   **({} if closed else {"class_embeddings": "float32 (C, D)"})},
        "boxes_clipped": not closed,
        "outputs": wrapper.output_names,
        "masks": wrapper.masks,
        "mask_size": wrapper.model.roi_heads.mask_pooler.output_size[0] * 2 if wrapper.masks else None,
        "exporter": {"detic": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "method": "torch.onnx.export(dynamo=False)"},
        "check": {**check.as_dict(), "box_tolerance_px": settings.box_tol, "score_tolerance": settings.score_tol},
    }
