"""The onnxruntime backend: an exported model behind the Predictor's prepare/predict contract.

`OrtPredictor` resizes frames exactly as `engine.predictor.Predictor` does (the same `_to_input`), feeds the
graph the picture and the vocabulary's (C, D) embeddings, and turns the graph's outputs into the same
`Instances` the PyTorch model gives, brought back to the original picture by the same
`detector_postprocess` (box scaling, clipping, mask pasting). `stream_results`, the writers, JSON and
pictures are therefore shared with the PyTorch backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from detic_cli.engine.predictor import InputSettings, Predictor
from detic_cli.errors import DeticError
from detic_cli.modeling.postprocess import detector_postprocess
from detic_cli.structures import Boxes, Instances


def ort_session(path: Path, *, threads: int | None = None, cuda: bool | None = False):
    """An onnxruntime InferenceSession of `path`: CPU, CUDA first when `cuda` (None: when present)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise DeticError("the onnxruntime backend needs onnxruntime: pip install 'detic[onnx]'") from exc
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if cuda is None:
        cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if cuda:
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise DeticError("--device cuda: this onnxruntime has no CUDA execution provider "
                             "(pip install onnxruntime-gpu), use --device cpu")
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        raise DeticError(f"--onnx {path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from exc


class OrtPredictor:
    """prepare/predict over an exported graph (inputs `image` and, open-vocabulary models, `class_embeddings`).

    `size` (H, W) is the fixed input of a model exported with --size (None: any size): a resized frame
    smaller than it is padded with the pixel mean (zero after the graph's normalisation) at the bottom and
    right, one larger is refused. `pixel_mean` is in the graph's channel order. `clip` False (Deformable
    DETR) scales boxes back to the picture without clipping or dropping empty ones, as that model does, and
    takes only frames that resize to exactly `size` (padding would change its results: the graph has no mask).
    """

    _to_input = Predictor._to_input  # the PyTorch backend's resizing, shared

    def __init__(self, session, *, inputs: InputSettings, pixel_mean: list[float], size: tuple[int, int] | None,
                 embeddings: np.ndarray | None, class_names: list[str] | None, clip: bool = True) -> None:
        self.session = session
        self.clip = clip
        self.open_vocabulary = "class_embeddings" in {i.name for i in session.get_inputs()}
        self.inputs = inputs
        self.pixel_mean = np.asarray(pixel_mean, dtype=np.float32).reshape(1, 3, 1, 1)
        self.size = size
        self.scorer = None
        self.output_names = [o.name for o in session.get_outputs()]
        self.embeddings = np.zeros((0, 0), np.float32)
        self.class_names: list[str] = []
        self.set_vocabulary(embeddings, class_names)

    def set_vocabulary(self, embeddings: np.ndarray | None, class_names: list[str] | None) -> None:
        """(C, D) embeddings, labelled `class_names`, become the graph's `class_embeddings` input (a closed
        vocabulary graph takes no embeddings: `class_names` label its classes)."""
        if not self.open_vocabulary:
            if embeddings is not None:
                raise DeticError("this exported model has a fixed, learned classifier: --vocab cannot change it")
            self.class_names = list(class_names or [])
            return
        if embeddings is None:
            raise DeticError("the onnxruntime backend needs the vocabulary's embeddings (its classifier is an input)")
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if class_names is not None and len(class_names) != len(embeddings):
            raise DeticError(f"{len(class_names)} class names for {len(embeddings)} embeddings")
        self.embeddings = embeddings
        self.class_names = list(class_names) if class_names is not None else [f"class_{i}"
                                                                              for i in range(len(embeddings))]

    def prepare(self, images_bgr: list[np.ndarray]) -> list[dict]:
        return [self._to_input(img) for img in images_bgr]

    def _graph_input(self, image: torch.Tensor) -> np.ndarray:
        array = image.numpy()[None]
        if self.size is None:
            return array
        (h, w), (height, width) = array.shape[-2:], self.size
        if not self.clip and (h, w) != (height, width):
            raise DeticError(f"a frame resized to {h}x{w}: this Deformable DETR export takes exactly {height}x{width}"
                             f" (export with --size {h} {w} for such frames)")
        if h > height or w > width:
            raise DeticError(f"a frame resized to {h}x{w} does not fit this model's fixed {height}x{width} input: "
                             "export with --dynamic or a larger --size")
        padded = np.broadcast_to(self.pixel_mean, (1, 3, height, width)).copy()
        padded[:, :, :h, :w] = array
        return padded

    def predict(self, inputs: list[dict]) -> list[Instances]:
        """Detections for `prepare`d inputs in original-picture pixels, one `Instances` each (CPU)."""
        return [self._predict_one(x) for x in inputs]

    def _predict_one(self, x: dict) -> Instances:
        result = self.network_detections(x)
        if self.clip:
            return detector_postprocess(result, x["height"], x["width"])
        out = Instances((x["height"], x["width"]), **result.get_fields())
        out.pred_boxes.scale(x["width"] / result.image_size[1], x["height"] / result.image_size[0])
        return out

    def network_detections(self, x: dict) -> Instances:
        """The graph's detections of one `prepare`d input, in network-input pixels (mask probabilities
        (N, 1, M, M)), as the PyTorch model's `inference(..., do_postprocess=False)` gives them."""
        feed = {"image": self._graph_input(x["image"])}
        if self.open_vocabulary:
            feed["class_embeddings"] = self.embeddings
        outputs = dict(zip(self.output_names, self.session.run(None, feed)))
        size = tuple(int(s) for s in x["image"].shape[-2:])
        result = Instances(size, pred_boxes=Boxes(torch.from_numpy(outputs["boxes"])),
                           scores=torch.from_numpy(outputs["scores"]),
                           pred_classes=torch.from_numpy(outputs["classes"]).to(torch.int64))
        if "mask_logits" in outputs:
            result.pred_masks = torch.from_numpy(outputs["mask_logits"]).sigmoid()
        return result

    def __call__(self, images_bgr: list[np.ndarray]) -> list[Instances]:
        return self.predict(self.prepare(images_bgr))
