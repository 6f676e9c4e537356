"""The config's side of export: which families export, the sidecar's facts, the models behind both ends.

The only module of `export/` that reads a config: `export_model` builds the PyTorch predictor of a config
and checkpoint and hands it to `export.export_onnx`; `load_ort_predictor` rebuilds the config recorded in an
exported model's sidecar and puts the onnxruntime backend behind the same vocabulary and threshold
resolution as `detect`'s PyTorch path.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import yaml

from detic_cli.config import CfgNode, load_config
from detic_cli.engine.class_thresholds import ClassThresholds, parse_class_thresholds
from detic_cli.engine.model_setup import VocabSpec, detect_config, input_settings, predictor_from_config, vocabulary_of
from detic_cli.errors import DeticError
from detic_cli.export.export import DETR_NEEDS_SIZE, ExportReport, ExportSettings, check_settings, export_onnx
from detic_cli.export.ort_backend import OrtPredictor, ort_session
from detic_cli.export.probe import probe_picture
from detic_cli.utils import resolve_device, sha256_file

EXPORTABLE_HEADS = {("CenterNet", "DeticCascadeROIHeads"), ("RPN", "CustomRes5ROIHeads")}


def export_refusal(cfg: CfgNode) -> str | None:
    """Why the model of `cfg` cannot be exported yet (None: it can)."""
    arch = cfg.MODEL.META_ARCHITECTURE
    if arch == "DeformableDetr":
        return None
    if arch != "CustomRCNN":
        return f"MODEL.META_ARCHITECTURE {arch} cannot be exported"
    heads = (cfg.MODEL.PROPOSAL_GENERATOR.NAME, cfg.MODEL.ROI_HEADS.NAME)
    if heads not in EXPORTABLE_HEADS:
        return (f"{heads[0]} proposals with {heads[1]} cannot be exported: only the CenterNet2 cascade (CenterNet, "
                "DeticCascadeROIHeads) and R50-C4 (RPN, CustomRes5ROIHeads) have a traceable inference path")
    return None


def sidecar_metadata(cfg: CfgNode, *, config: Path, weights: Path) -> dict:
    """What a user of the .onnx needs besides the graph: the config, weights, input and output settings."""
    closed = cfg.MODEL.META_ARCHITECTURE == "DeformableDetr"
    return {
        "format": "detic-onnx/1",
        "config_file": str(config),
        "config": cfg.to_dict(),
        "weights": str(weights),
        "weights_sha256": sha256_file(weights),
        "channel_order": cfg.INPUT.FORMAT,
        "min_size_test": cfg.INPUT.MIN_SIZE_TEST,
        "max_size_test": cfg.INPUT.MAX_SIZE_TEST,
        "pixel_mean": list(cfg.MODEL.PIXEL_MEAN),
        "pixel_std": list(cfg.MODEL.PIXEL_STD),
        # Deformable DETR's graph keeps its whole top-k: any threshold applies after it
        "score_threshold": 0.0 if closed else cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,
        "one_class_per_proposal": cfg.MODEL.ROI_HEADS.ONE_CLASS_PER_PROPOSAL,
        "embedding_dim": None if closed else cfg.MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM,
        "num_classes": cfg.MODEL.DETR.NUM_CLASSES if closed else None,
    }


def export_model(*, config: Path, weights: Path, out: Path, settings: ExportSettings, overrides: list[str],
                 vocab: VocabSpec = None, vocab_names: Path | None = None, clip_checkpoint: Path | None = None,
                 probe: Path | None = None, threshold: float = 0.5, pred_all_class: bool = False,
                 mirror: str | None = None) -> ExportReport:
    """Export the model of `config` + `weights` (detect's demo settings at `threshold`) to `out`; the
    vocabulary `vocab` (default lvis) runs the probe check, and any vocabulary can be fed at run time."""
    check_settings(settings)
    cfg = detect_config(config, overrides, threshold, pred_all_class)
    if (reason := export_refusal(cfg)) is not None:
        raise DeticError(reason)
    if cfg.MODEL.META_ARCHITECTURE == "DeformableDetr" and settings.size is None:
        raise DeticError(DETR_NEEDS_SIZE)
    if not weights.is_file():
        raise DeticError(f"--weights {weights}: no such file")
    voc = vocabulary_of(cfg, vocab, vocab_names=vocab_names, clip_checkpoint=clip_checkpoint, mirror=mirror)
    predictor = predictor_from_config(cfg, weights=weights, device=torch.device("cpu"), embeddings=voc.embeddings,
                                      class_names=voc.names)
    from detic_cli.data.image_io import read_image_bgr

    picture = read_image_bgr(probe) if probe is not None else probe_picture()
    return export_onnx(predictor, out=out, embeddings=voc.embeddings, probe_bgr=picture, settings=settings,
                       metadata=sidecar_metadata(cfg, config=config, weights=weights))


def read_sidecar(onnx_path: Path) -> dict:
    """The `.onnx.json` written beside an exported model."""
    sidecar = Path(f"{onnx_path}.json")
    if not onnx_path.is_file():
        raise DeticError(f"--onnx {onnx_path}: no such file")
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError) as exc:
        raise DeticError(f"--onnx {onnx_path}: its sidecar {sidecar.name} is missing or unreadable; export the "
                         "model with `detic export`") from exc
    if not isinstance(meta, dict) or meta.get("format") != "detic-onnx/1" or "config" not in meta:
        raise DeticError(f"--onnx {onnx_path}: {sidecar.name} is not a detic export sidecar")
    return meta


RUNTIME_KEYS = ("INPUT.MIN_SIZE_TEST", "INPUT.MAX_SIZE_TEST")  # resizing happens outside the graph


def config_from_dict(tree: Mapping, overrides: list[str] | None = None) -> CfgNode:
    """The CfgNode of a recorded `to_dict()` (checked against the defaults like any YAML), then `overrides`."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(yaml.safe_dump(dict(tree)))
        return load_config(path, overrides)


def _check_overrides(overrides: list[str], meta: dict, name: str) -> None:
    """Only the resize sizes may change at run time, and only on a model with a dynamic image input."""
    for word in overrides:
        key = word.split("=", 1)[0]
        if key not in RUNTIME_KEYS:
            raise DeticError(f"{word}: {name} has its config built into the graph; only {' and '.join(RUNTIME_KEYS)}"
                             " can change at run time (re-export for other keys)")
        if meta.get("input_size"):
            raise DeticError(f"{word}: {name} was exported for a fixed {meta['input_size'][0]}x"
                             f"{meta['input_size'][1]} input; export with --dynamic to resize differently")


def exported_config(onnx: Path, overrides: list[str] | None = None) -> tuple[dict, CfgNode]:
    """(sidecar, config) of an exported model: the config recorded at export, then the run-time `overrides`
    (RUNTIME_KEYS only, on a dynamic-size model)."""
    meta = read_sidecar(onnx)
    _check_overrides(list(overrides or []), meta, onnx.name)
    return meta, config_from_dict(meta["config"], list(overrides or []))


def ort_predictor(onnx: Path, meta: dict, cfg: CfgNode, *, embeddings: np.ndarray | None,
                  class_names: list[str] | None, device: str = "auto", threads: int | None = None) -> OrtPredictor:
    """The onnxruntime predictor of an exported model (`exported_config`'s `meta` and `cfg`), fed the (C, D)
    `embeddings` labelled `class_names`; `device` auto/cpu/cuda picks the execution provider."""
    cuda = None if device == "auto" else resolve_device(device).type == "cuda"
    size = tuple(meta["input_size"]) if meta.get("input_size") else None
    session = ort_session(onnx, threads=threads, cuda=cuda)
    if meta.get("num_classes") and not class_names:  # a closed vocabulary without names: as PyTorch labels it
        class_names = [f"class_{i}" for i in range(meta["num_classes"])]
    return OrtPredictor(session, inputs=input_settings(cfg), pixel_mean=list(meta["pixel_mean"]), size=size,
                        embeddings=None if embeddings is None else np.asarray(embeddings, dtype=np.float32),
                        class_names=class_names, clip=meta.get("boxes_clipped", True))


def load_ort_predictor(*, onnx: Path, vocab: VocabSpec = None, vocab_names: Path | None = None,
                       vocab_file: Path | None = None, clip_checkpoint: Path | None = None, threshold: float = 0.5,
                       class_thresholds: str | Mapping[str, float] | None = None, pred_all_class: bool = False,
                       overrides: list[str] | None = None, device: str = "auto", threads: int | None = None,
                       mirror: str | None = None) -> tuple[OrtPredictor, ClassThresholds]:
    """The onnxruntime predictor of an exported model and the per-class thresholds over it; the vocabulary
    is resolved as `detect` resolves it and fed to the graph at run time. `overrides` may change the
    resizing (RUNTIME_KEYS) of a dynamic-size model."""
    meta, cfg = exported_config(onnx, overrides)
    thresholds = parse_class_thresholds(class_thresholds, threshold)
    if thresholds.model_threshold < meta["score_threshold"] - 1e-9:
        raise DeticError(f"--threshold {thresholds.model_threshold}: {onnx.name} was exported with threshold "
                         f"{meta['score_threshold']}; re-export with `detic export --threshold "
                         f"{thresholds.model_threshold}` for lower thresholds")
    if pred_all_class == meta["one_class_per_proposal"]:
        flag = "with" if pred_all_class else "without"
        raise DeticError(f"--pred-all-class: {onnx.name} was exported {'without' if pred_all_class else 'with'} it; "
                         f"re-export {flag} --pred-all-class")
    voc = vocabulary_of(cfg, vocab, vocab_names=vocab_names, vocab_file=vocab_file, clip_checkpoint=clip_checkpoint,
                        mirror=mirror)
    predictor = ort_predictor(onnx, meta, cfg, embeddings=voc.embeddings, class_names=voc.names, device=device,
                              threads=threads)
    thresholds.check(predictor.class_names)
    return predictor, thresholds
