"""CustomRCNN: backbone -> proposal generator -> ROI heads, with a swappable open vocabulary."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from detic_cli.errors import DeticError
from detic_cli.modeling.backbone.base import Backbone
from detic_cli.modeling.postprocess import detector_postprocess
from detic_cli.modeling.protocols import ProposalGenerator, ROIHeads
from detic_cli.modeling.roi_heads.caption_loss import gather_caption_features
from detic_cli.modeling.roi_heads.rescoring import RegionScorer
from detic_cli.modeling.roi_heads.weak_supervision import ANN_TYPES, BatchClassifier
from detic_cli.modeling.text.text_encoder import TextEncoder
from detic_cli.modeling.weak_inputs import DynamicClassSampler, encode_captions
from detic_cli.structures import ImageList, Instances


class CustomRCNN(nn.Module):
    """The two-stage Detic detector.

    Inputs follow the model contract: dicts with "image" (3, H, W) float/uint8 in the config's
    INPUT.FORMAT channel order, 0-255, already resized, and "height"/"width" of the original image.
    Inference returns one dict per image with "instances" in original-image pixels. In training mode
    `forward` returns the `loss_*` terms (see `forward_train`). `dataset_loss_weight[s]` (MODEL.
    DATASET_LOSS_WEIGHT, optional) multiplies every loss of a batch from dataset source s.
    Weak supervision: `text_encoder` (MODEL.WITH_CAPTION, frozen CLIP text tower, keys `text_encoder.*`)
    embeds one caption per image of caption batches; with `sync_caption_batch` the embeddings of every
    process are gathered (box-batch processes add `cap_batch_ratio` * B zero rows); `dynamic_classes`
    (MODEL.DYNAMIC_CLASSIFIER) samples each non-caption batch's class subset.
    """

    def __init__(self, *, backbone: Backbone, proposal_generator: ProposalGenerator, roi_heads: ROIHeads,
                 pixel_mean: list[float], pixel_std: list[float], input_format: str = "BGR",
                 text_encoder: TextEncoder | None = None, dataset_loss_weight: list[float] | None = None,
                 sync_caption_batch: bool = False, cap_batch_ratio: int = 4,
                 dynamic_classes: DynamicClassSampler | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads
        self.input_format = input_format
        self.text_encoder = text_encoder
        if text_encoder is not None:
            text_encoder.requires_grad_(False)
        self.sync_caption_batch = sync_caption_batch
        self.cap_batch_ratio = cap_batch_ratio
        self.dynamic_classes = dynamic_classes
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)
        self.class_names: list[str] = []
        self.dataset_loss_weight = list(dataset_loss_weight or [])
        self.input_bucket = 0  # inference inputs padded to a multiple of this (static shapes; 0 = off)

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

    def keep_region_embeddings(self) -> RegionScorer:
        """From now on, inference gives detections `pred_embeddings` (N, S, D float32: each cascade stage's
        classifier-space embedding) and `proposal_scores` (N,); returns how those become class scores."""
        self.roi_heads.keep_embeddings = True
        return self.roi_heads.region_scorer()

    def preprocess_image(self, batched_inputs: list[dict[str, Any]]) -> ImageList:
        images = [(x["image"].to(self.device).float() - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        multiple = self.size_divisibility
        if self.input_bucket and not self.training:
            multiple = math.lcm(max(multiple, 1), self.input_bucket)
        return ImageList.from_tensors(images, multiple)

    def forward(self, batched_inputs: list[dict[str, Any]]):
        if self.training:
            return self.forward_train(batched_inputs)
        return self.inference(batched_inputs)

    def forward_train(self, batched_inputs: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Scalar `loss_*` terms for one training batch (the dicts `data.build.build_train_loader` yields).

        Every element carries "instances" (`gt_boxes` XYXY in the frame of its "image", `gt_classes`
        in [0, C) of the vocabulary set with `set_vocabulary`, optional `gt_masks`) and one shared
        "ann_type" (default "box"; "image", "caption", "captiontag" with "pos_category_ids" in [0, C) and,
        for caption types, "captions"). Box batches train the proposal generator and the ROI heads; other
        batches keep the proposal losses at zero and go to the ROI heads' image-label / caption losses.
        """
        if not self.class_names:
            raise DeticError("training needs the class embeddings: call model.set_vocabulary(...) first "
                             "(e.g. from MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH)")
        ann_type = _batch_ann_type(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        features = self.backbone(images.tensor)
        batch = self.batch_classifier(batched_inputs, gt_instances, ann_type)
        proposals, losses = self.proposals_with_losses(images, features, gt_instances)
        if ann_type == "box":
            losses.update(self.roi_heads.forward_with_losses(features, proposals, gt_instances, batch=batch))
        else:
            losses = {name: value * 0 for name, value in losses.items()}
            losses.update(self.image_label_losses(features, proposals, batched_inputs, ann_type, batch))
        return self.weight_by_dataset(losses, batched_inputs)

    def batch_classifier(self, batched_inputs: list[dict[str, Any]], gt_instances: list[Instances],
                         ann_type: str) -> BatchClassifier:
        """Caption embeddings (caption batches, gathered with SYNC_CAPTION_BATCH) and the dynamic class subset."""
        batch = BatchClassifier()
        if self.text_encoder is not None and "caption" in ann_type:
            batch.caption_features = encode_captions(self.text_encoder, [list(x.get("captions", []))
                                                                         for x in batched_inputs], self.device)
        if self.text_encoder is not None and self.sync_caption_batch:  # collective: every process, every batch
            rows = len(batched_inputs) * (self.cap_batch_ratio if ann_type == "box" else 1)
            batch.caption_features, batch.caption_offset = gather_caption_features(
                batch.caption_features, num_rows=rows, dim=self.text_encoder.text_projection.shape[1],
                device=self.device)
        if self.dynamic_classes is not None and ann_type != "caption":
            if ann_type == "box":
                classes = torch.cat([g.gt_classes for g in gt_instances])
            else:
                classes = torch.tensor([c for x in batched_inputs for c in x.get("pos_category_ids", [])],
                                       dtype=torch.long)
            batch.classifier, batch.cls_id_map = self.dynamic_classes.sample(
                classes, box_data=ann_type == "box", zs_weight=self.roi_heads.vocabulary_weight())
        return batch

    def weight_by_dataset(self, losses: dict[str, torch.Tensor],
                          batched_inputs: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Every loss times DATASET_LOSS_WEIGHT of the batch's "dataset_source" (unchanged without weights)."""
        if not self.dataset_loss_weight:
            return losses
        sources = {x.get("dataset_source", 0) for x in batched_inputs}
        if not sources <= set(range(len(self.dataset_loss_weight))):
            raise DeticError(f"dataset sources {sorted(sources)} but MODEL.DATASET_LOSS_WEIGHT has "
                             f"{len(self.dataset_loss_weight)} entries (one per DATASETS.TRAIN)")
        if len(sources) != 1:
            raise DeticError(f"a training batch mixes dataset sources {sorted(sources)} (MODEL.DATASET_LOSS_WEIGHT "
                             "needs DATALOADER.MULTI_DATASET_GROUPING)")
        weight = self.dataset_loss_weight[sources.pop()]
        return {name: value * weight for name, value in losses.items()}

    def proposals_with_losses(self, images: ImageList, features: dict[str, torch.Tensor],
                              gt_instances: list[Instances]) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        """(proposals without gradient, proposal-generator losses) for the padded batch."""
        return self.proposal_generator.forward_with_losses(images, features, gt_instances)

    def image_label_losses(self, features: dict[str, torch.Tensor], proposals: list[Instances],
                           batched_inputs: list[dict[str, Any]], ann_type: str,
                           batch: BatchClassifier | None = None) -> dict[str, torch.Tensor]:
        """Weakly supervised losses (image labels, captions) from the ROI heads."""
        image_labels = [list(x.get("pos_category_ids", [])) for x in batched_inputs]
        return self.roi_heads.forward_image_labels(features, proposals, image_labels, ann_type=ann_type,
                                                   batch=batch or BatchClassifier())

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
    if not types <= set(ANN_TYPES):
        raise DeticError(f"annotation type {types.pop()!r} is not supported in training: use one of "
                         f"{', '.join(ANN_TYPES)} (DATALOADER.DATASET_ANN)")
    missing = [i for i, x in enumerate(batched_inputs) if "instances" not in x]
    if missing:
        raise DeticError(f"training batch elements {missing} have no 'instances' (ground truth)")
    return types.pop()
