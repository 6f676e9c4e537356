"""Batched inference on raw BGR frames: resize, channel order, device, vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from detic_cli.data.transforms import resize_shortest_edge
from detic_cli.engine.amp import autocast_scope, to_float32
from detic_cli.engine.host_memory import keep_freed_blocks
from detic_cli.errors import DeticError
from detic_cli.layers.fast_conv import use_winograd
from detic_cli.layers.fused_conv import use_fused_convolutions
from detic_cli.modeling.roi_heads.rescoring import RegionScorer
from detic_cli.structures import Instances


def same_size_groups(inputs: list[dict]) -> list[list[int]]:
    """Indices of `inputs` grouped by network-input shape, in first-seen order.

    The original demo runs one image per forward pass, so each image is padded only to the
    backbone's size divisibility. Batching different sizes together would pad them to a common
    size, which changes the features near the border (and Swin's shifted windows everywhere), so
    only same-size inputs share a forward pass.
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(inputs):
        groups.setdefault(tuple(x["image"].shape), []).append(i)
    return list(groups.values())


@dataclass(frozen=True)
class InputSettings:
    """How a frame becomes the network's input: shortest edge to `min_size`, longest capped at `max_size`,
    channels in `channel_order` ("BGR" or "RGB"; the config's INPUT.MIN_SIZE_TEST, MAX_SIZE_TEST, FORMAT)."""

    min_size: int
    max_size: int
    channel_order: str = "BGR"


class Predictor:
    """Turns BGR uint8 frames into detections of a built, loaded `model` (see
    `engine.model_setup.predictor_from_config` for a config and a checkpoint).

    Detections are `Instances` on the CPU in original-image pixels: `pred_boxes` (XYXY), `scores`
    in [0, 1], `pred_classes` (indices into the vocabulary) and `pred_masks` (H, W bool) when the
    model has a mask head. Any batch gives the same detections as one frame at a time.
    The model is moved to `device` and put in eval mode; it is used as it is, not copied (evaluation
    during training runs the model being trained). `amp` (float16 or bfloat16) runs the backbone
    under autocast, as Detic's FP16 does; None keeps everything in float32 (the original demo).
    `prepare` (CPU only, thread-safe) and `predict` may run on different threads to overlap them.
    `embeddings` (C, D) set an open-vocabulary model's classifier, labelled by `class_names`; with
    `class_names` alone they label a closed model's own classes (Deformable DETR's 1203 LVIS ones).
    `input_bucket` > 0 pads every network input to a multiple of that many pixels (static shapes for CUDA
    graphs / compiled kernels: a stream of sizes maps onto a few shapes; 0 pads only to the backbone's
    divisibility, as the original demo). Detections then differ slightly near the padded border.
    `region_embeddings` makes detections carry their per-stage classifier-space embeddings
    (`pred_embeddings` (N, S, D), `proposal_scores` (N,)); `scorer` then rescores them.
    """

    def __init__(self, model: nn.Module, *, inputs: InputSettings, device: torch.device,
                 embeddings: np.ndarray | None = None, class_names: list[str] | None = None,
                 amp: torch.dtype | None = None, region_embeddings: bool = False, input_bucket: int = 0) -> None:
        if input_bucket < 0:
            raise DeticError(f"input_bucket must be 0 (off) or a positive number of pixels, got {input_bucket}")
        keep_freed_blocks()  # per-call host tensors reuse freed heap blocks instead of fresh page-faulted memory
        self.amp = amp
        self.device = device
        self.model = model
        self.model.to(device).eval()
        self.model.input_bucket = int(input_bucket)
        use_winograd(self.model)  # CPU inference only; training (with gradient) keeps the direct convolution
        use_fused_convolutions(self.model)  # ResNet backbones: folded, prepacked oneDNN convs (same condition)
        self.set_vocabulary(embeddings, class_names)
        self.scorer: RegionScorer | None = None
        if region_embeddings:
            keep = getattr(self.model, "keep_region_embeddings", None)
            if keep is None:
                raise DeticError(f"--embeddings: {type(model).__name__} has no zero-shot classifier, so its "
                                 "detections have no classifier-space embeddings")
            self.scorer = keep()
        self.inputs = inputs

    @property
    def class_names(self) -> list[str]:
        return self.model.class_names

    def set_vocabulary(self, embeddings: np.ndarray | None, class_names: list[str] | None) -> None:
        """(C, D) `embeddings` become the classifier, labelled `class_names`; names alone relabel a closed
        model's own classes (their count must match); neither keeps the model's vocabulary."""
        if embeddings is not None:
            self.model.set_vocabulary(torch.as_tensor(np.asarray(embeddings, dtype=np.float32)), class_names)
        elif class_names is not None:  # names only: they label the classes the model already has
            if len(class_names) != len(self.model.class_names):
                raise DeticError(f"{len(class_names)} class names given for the model's "
                                 f"{len(self.model.class_names)} classes")
            self.model.class_names = list(class_names)

    def _to_input(self, image_bgr: np.ndarray) -> dict:
        """The demo's preprocessing: the channel order, shortest edge to `min_size` (longest capped at
        `max_size`, PIL bilinear), float32 (3, H, W) in 0-255."""
        height, width = image_bgr.shape[:2]
        image = image_bgr[:, :, ::-1] if self.inputs.channel_order == "RGB" else image_bgr
        image = resize_shortest_edge(np.ascontiguousarray(image), self.inputs.min_size, self.inputs.max_size)
        tensor = torch.as_tensor(image.astype("float32").transpose(2, 0, 1))
        return {"image": tensor, "height": height, "width": width}

    def prepare(self, images_bgr: list[np.ndarray]) -> list[dict]:
        """The network inputs of BGR uint8 (H, W, 3) frames (see `_to_input`)."""
        return [self._to_input(img) for img in images_bgr]

    @torch.no_grad()
    def predict(self, inputs: list[dict]) -> list[Instances]:
        """Detections for `prepare`d inputs, one `Instances` each, in order."""
        results: list[Instances | None] = [None] * len(inputs)
        with autocast_scope(self.model, self.device.type, self.amp):
            for group in same_size_groups(inputs):
                outputs = self.model.inference([inputs[i] for i in group])
                for i, out in zip(group, outputs):
                    # a model without a `backbone` to scope (Deformable DETR) ran wholly under autocast
                    instances = out["instances"].to("cpu")
                    results[i] = to_float32(instances) if self.amp is not None else instances
        return results  # type: ignore[return-value]

    def __call__(self, images_bgr: list[np.ndarray]) -> list[Instances]:
        return self.predict(self.prepare(images_bgr))
