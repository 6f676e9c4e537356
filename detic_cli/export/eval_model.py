"""An exported model (`detic export`) as the model of an evaluation: `detic eval --backend onnxruntime`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detic_cli.engine.evaluate import PrebuiltModel
from detic_cli.export.build import exported_config, ort_predictor
from detic_cli.utils import sha256_file

__all__ = ["exported_eval_model"]


def exported_eval_model(onnx: str | Path, overrides: list[str] | None = None) -> PrebuiltModel:
    """The graph `onnx` with its sidecar's config (plus `overrides` it allows), run in onnxruntime with the
    vocabulary as its input; the run's fingerprint records the backend and the graph's sha256."""
    path = Path(onnx)
    meta, cfg = exported_config(path, list(overrides or []))
    per_box = "one class per box" if meta["one_class_per_proposal"] else "every class above it per box"
    note = (f"eval: {path.name} runs in onnxruntime with its export's settings: score threshold "
            f"{meta['score_threshold']}, {per_box} (export with --threshold and --pred-all-class to change them)")

    def make_predictor(embeddings: np.ndarray | None, names: list[str] | None, device: str):
        return ort_predictor(path, meta, cfg, embeddings=embeddings, class_names=names, device=device)

    return PrebuiltModel(path=path, flag="--onnx", cfg=cfg,
                         fingerprint={"backend": "onnxruntime", "onnx_sha256": sha256_file(path)}, note=note,
                         make_predictor=make_predictor)
