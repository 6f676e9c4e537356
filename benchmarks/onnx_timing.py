"""The onnxruntime column of bench_detect.py: export a predictor's model, time the graph on the same frames.

The model is exported with dynamic height and width (`detic export --dynamic`), the vocabulary as an input,
the first frame as the probe of the export's onnxruntime-vs-PyTorch check; then `OrtPredictor.predict` (the
`detect --backend onnxruntime` path: masks pasted, boxes scaled back) runs on the frames prepared exactly as
the PyTorch column prepares them, one image per call (the graph takes one image), on the CPU execution
provider with `threads` intra-op threads.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from detic_cli.engine.predictor import Predictor
from detic_cli.errors import DeticError
from detic_cli.export.export import ExportSettings, export_onnx
from detic_cli.export.ort_backend import OrtPredictor, ort_session


def onnx_ms_per_image(predictor: Predictor, frames: list[np.ndarray], vocab: np.ndarray, threads: int) -> str:
    """Milliseconds per image of the exported graph of `predictor`'s (CPU, float32) model over `frames`, or
    why there is no number (an export that fails its check)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        try:
            export_onnx(predictor, out=path, embeddings=vocab, probe_bgr=frames[0],
                        settings=ExportSettings(threads=threads), metadata={})
        except DeticError as exc:
            return f"export failed: {exc}"
        ort = OrtPredictor(ort_session(path, threads=threads), inputs=predictor.inputs,
                           pixel_mean=predictor.model.pixel_mean.flatten().tolist(), size=None, embeddings=vocab,
                           class_names=predictor.class_names)
        inputs = [ort.prepare([frame]) for frame in frames]
        ort.predict(inputs[0])  # warm-up
        start = time.perf_counter()
        for x in inputs:
            ort.predict(x)
        return f"{1000 * (time.perf_counter() - start) / len(frames):.1f}"
