"""CustomRCNN: backbone -> proposal generator -> ROI heads, with a swappable open vocabulary."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from detic_cli.modeling.backbone.base import Backbone
from detic_cli.modeling.postprocess import detector_postprocess
from detic_cli.structures import ImageList, Instances


class CustomRCNN(nn.Module):
    """The two-stage Detic detector.

    Inputs follow the model contract: dicts with "image" (3, H, W) float/uint8 in the config's
    INPUT.FORMAT channel order, 0-255, already resized, and "height"/"width" of the original image.
    Inference returns one dict per image with "instances" in original-image pixels.
    """

    def __init__(self, *, backbone: Backbone, proposal_generator: nn.Module, roi_heads: nn.Module,
                 pixel_mean: list[float], pixel_std: list[float], input_format: str = "BGR",
                 extra_modules: dict[str, nn.Module] | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads
        self.input_format = input_format
        for name, module in (extra_modules or {}).items():
            self.add_module(name, module)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)
        self.class_names: list[str] = []

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def size_divisibility(self) -> int:
        return self.backbone.size_divisibility

    def set_vocabulary(self, embeddings: torch.Tensor, names: list[str] | None = None) -> None:
        """Use (C, D) class embeddings as the classifier; `names` label the C classes."""
        self.roi_heads.set_vocabulary(embeddings.to(self.device))
        self.class_names = list(names) if names is not None else [f"class_{i}" for i in range(len(embeddings))]

    def preprocess_image(self, batched_inputs: list[dict[str, Any]]) -> ImageList:
        images = [(x["image"].to(self.device).float() - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        return ImageList.from_tensors(images, self.size_divisibility)

    def forward(self, batched_inputs: list[dict[str, Any]]):
        if self.training:
            raise RuntimeError("CustomRCNN.forward in training mode needs the trainer's loss path")
        return self.inference(batched_inputs)

    @torch.no_grad()
    def inference(self, batched_inputs: list[dict[str, Any]], do_postprocess: bool = True):
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        proposals = self.proposal_generator(images, features)
        results: list[Instances] = self.roi_heads(features, proposals)
        if not do_postprocess:
            return results
        out = []
        for result, inputs, size in zip(results, batched_inputs, images.image_sizes):
            height = inputs.get("height", size[0])
            width = inputs.get("width", size[1])
            out.append({"instances": detector_postprocess(result, height, width)})
        return out
