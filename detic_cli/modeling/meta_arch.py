"""CustomRCNN: backbone -> proposal generator -> ROI heads, with a swappable open vocabulary."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from detic_cli.errors import DeticError
from detic_cli.modeling.backbone.base import Backbone
from detic_cli.modeling.postprocess import detector_postprocess
from detic_cli.modeling.proposal.rpn import RPN
from detic_cli.structures import ImageList, Instances


class CustomRCNN(nn.Module):
    """The two-stage Detic detector.

    Inputs follow the model contract: dicts with "image" (3, H, W) float/uint8 in the config's
    INPUT.FORMAT channel order, 0-255, already resized, and "height"/"width" of the original image.
    Inference returns one dict per image with "instances" in original-image pixels. In training mode
    `forward` returns the `loss_*` terms (see `forward_train`). `dataset_loss_weight[s]` (MODEL.
    DATASET_LOSS_WEIGHT, optional) multiplies every loss of a batch from dataset source s.
    """

    def __init__(self, *, backbone: Backbone, proposal_generator: nn.Module, roi_heads: nn.Module,
                 pixel_mean: list[float], pixel_std: list[float], input_format: str = "BGR",
                 extra_modules: dict[str, nn.Module] | None = None,
                 dataset_loss_weight: list[float] | None = None) -> None:
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
        self.dataset_loss_weight = list(dataset_loss_weight or [])

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
            return self.forward_train(batched_inputs)
        return self.inference(batched_inputs)

    def forward_train(self, batched_inputs: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Scalar `loss_*` terms for one training batch (the dicts `data.build.build_train_loader` yields).

        Every element carries "instances" (`gt_boxes` XYXY in the frame of its "image", `gt_classes`
        in [0, C) of the vocabulary set with `set_vocabulary`, optional `gt_masks`) and one shared
        "ann_type" (default "box"). Box batches train the proposal generator and the ROI heads; other
        batches keep the proposal losses at zero and go to the ROI heads' image-label losses.
        """
        if not self.class_names:
            raise DeticError("training needs the class embeddings: call model.set_vocabulary(...) first "
                             "(e.g. from MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH)")
        ann_type = _batch_ann_type(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        features = self.backbone(images.tensor)
        proposals, losses = self.proposals_with_losses(images, features, gt_instances)
        if ann_type == "box":
            losses.update(self.roi_heads.forward_with_losses(features, proposals, gt_instances))
        else:
            losses = {name: value * 0 for name, value in losses.items()}
            losses.update(self.image_label_losses(features, proposals, batched_inputs, ann_type))
        if self.dataset_loss_weight:
            sources = {x.get("dataset_source", 0) for x in batched_inputs}
            if not sources <= set(range(len(self.dataset_loss_weight))):
                raise DeticError(f"dataset sources {sorted(sources)} but MODEL.DATASET_LOSS_WEIGHT has "
                                 f"{len(self.dataset_loss_weight)} entries (one per DATASETS.TRAIN)")
            if len(sources) != 1:
                raise DeticError(f"a training batch mixes dataset sources {sorted(sources)} (MODEL.DATASET_LOSS_WEIGHT "
                                 "needs DATALOADER.MULTI_DATASET_GROUPING)")
            weight = self.dataset_loss_weight[sources.pop()]
            losses = {name: value * weight for name, value in losses.items()}
        return losses

    def proposals_with_losses(self, images: ImageList, features: dict[str, torch.Tensor],
                              gt_instances: list[Instances]) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        """(proposals without gradient, proposal-generator losses) for the padded batch."""
        if isinstance(self.proposal_generator, RPN):
            return self.proposal_generator.forward_with_losses(images, features, [g.gt_boxes for g in gt_instances])
        return self.proposal_generator.forward_with_losses(images, features, gt_instances)

    def image_label_losses(self, features: dict[str, torch.Tensor], proposals: list[Instances],
                           batched_inputs: list[dict[str, Any]], ann_type: str) -> dict[str, torch.Tensor]:
        """Weakly supervised losses (image labels, captions) from the ROI heads, where they exist."""
        forward = getattr(self.roi_heads, "forward_image_labels", None)
        if forward is None:
            raise DeticError(f"image-label training is not available yet (a batch of ann_type {ann_type!r})")
        image_labels = [list(x.get("pos_category_ids", [])) for x in batched_inputs]
        return forward(features, proposals, image_labels, ann_type=ann_type)

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


def _batch_ann_type(batched_inputs: list[dict[str, Any]]) -> str:
    """The one "ann_type" of a training batch ("box" when absent)."""
    types = {x.get("ann_type", "box") for x in batched_inputs}
    if len(types) != 1:
        raise DeticError(f"a training batch mixes annotation types {sorted(types)}: group batches by dataset")
    missing = [i for i, x in enumerate(batched_inputs) if "instances" not in x]
    if missing:
        raise DeticError(f"training batch elements {missing} have no 'instances' (ground truth)")
    return types.pop()
