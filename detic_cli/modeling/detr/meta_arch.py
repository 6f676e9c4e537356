"""DeformableDetr: the detector-level wrapper (normalise, pad + mask, run, top-k post-processing).

Follows Detic's detectron2 wrapper at inference: images are normalised, then zero-padded at the
bottom/right to the batch's largest size with a padding mask; scores are sigmoid probabilities and
the detections are the top TEST.DETECTIONS_PER_IMAGE (query, class) pairs, several classes per
query allowed, with no score threshold and no NMS (the original ignores ROI_HEADS.SCORE_THRESH_TEST
for this architecture). Boxes are scaled straight to the original image size, without clipping.

In training mode the same padded batch runs through every decoder layer and the two-stage proposals,
and `SetCriterion` (criterion.py) returns the weighted `loss_*` terms; with image labels
(WITH_IMAGE_LABELS) image-labelled batches add WEAK_WEIGHT * the max-size loss as `loss_image`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from detic_cli.errors import DeticError
from detic_cli.modeling.detr.box_ops import box_cxcywh_to_xyxy, inverse_sigmoid
from detic_cli.modeling.detr.criterion import DetrOutput, SetCriterion, max_size_image_loss, targets_from_instances
from detic_cli.modeling.detr.deformable_detr import DeformableDETR
from detic_cli.structures import Boxes, Instances

__all__ = ["DeformableDetr", "pad_with_mask"]


def pad_with_mask(images: list[torch.Tensor], multiple: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """[(3, H_i, W_i)] -> ((N, 3, H, W) zero-padded at the bottom/right, (N, H, W) bool, True on padding).

    H, W: the largest height and width, rounded up to a multiple of `multiple` when it is > 0."""
    h = max(int(t.shape[-2]) for t in images)
    w = max(int(t.shape[-1]) for t in images)
    if multiple > 0:
        h, w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    batch = images[0].new_zeros((len(images), images[0].shape[0], h, w))
    mask = torch.ones((len(images), h, w), dtype=torch.bool, device=images[0].device)
    for i, t in enumerate(images):
        batch[i, :, : t.shape[-2], : t.shape[-1]].copy_(t)
        mask[i, : t.shape[-2], : t.shape[-1]] = False
    return batch, mask


class DeformableDetr(nn.Module):
    """Closed-vocabulary detector with a learned `num_classes`-way sigmoid classifier.

    Inputs follow the model contract: dicts with "image" (3, H, W) float/uint8 0-255 in
    `input_format` channel order, already resized, and "height"/"width" of the original image.
    """

    size_divisibility = 0

    def __init__(self, *, detr: DeformableDETR, num_classes: int, pixel_mean: list[float], pixel_std: list[float],
                 input_format: str = "RGB", test_topk: int = 300, group_by_size: bool = True,
                 criterion: SetCriterion | None = None, deep_supervision: bool = True,
                 with_image_labels: bool = False, weak_weight: float = 0.1) -> None:
        super().__init__()
        self.criterion = criterion
        self.deep_supervision = deep_supervision
        self.with_image_labels = with_image_labels
        self.weak_weight = weak_weight
        self.detr = detr
        self.num_classes = num_classes
        self.input_format = input_format
        self.test_topk = test_topk
        self.group_by_size = group_by_size
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)
        self.class_names: list[str] = [f"class_{i}" for i in range(num_classes)]
        self.input_bucket = 0  # inference inputs padded to a multiple of this (static shapes; 0 = off)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def set_vocabulary(self, embeddings: torch.Tensor, names: list[str] | None = None) -> None:
        """Accept only the built-in vocabulary size; the classifier itself never changes. `names` label it."""
        if embeddings.shape[0] != self.num_classes:
            raise DeticError(f"Deformable DETR has a fixed, learned {self.num_classes}-class LVIS classifier: "
                             "--vocab cannot change it; use --vocab lvis or omit --vocab")
        if names is not None:
            if len(names) != self.num_classes:
                raise DeticError(f"{len(names)} class names given for a {self.num_classes}-class classifier")
            self.class_names = list(names)

    def forward(self, batched_inputs: list[dict[str, Any]]):
        if self.training:
            return self.losses(batched_inputs)
        return self.inference(batched_inputs)

    def _all_outputs(self, batch: torch.Tensor, mask: torch.Tensor) -> tuple[list[DetrOutput], DetrOutput]:
        """Normalised padded batch -> (decoder outputs first to last layer, encoder proposals), boxes cxcywh."""
        detr = self.detr
        out = detr.transformer(*detr._levels(batch, mask))
        layers = []
        for lvl in range(out.hs.shape[0]):
            reference = out.init_reference if lvl == 0 else out.inter_references[lvl - 1]
            boxes = (detr.bbox_embed[lvl](out.hs[lvl]) + inverse_sigmoid(reference)).sigmoid()
            layers.append({"pred_logits": detr.class_embed[lvl](out.hs[lvl]), "pred_boxes": boxes})
        return layers, {"pred_logits": out.enc_class, "pred_boxes": out.enc_coord_unact.sigmoid()}

    def losses(self, batched_inputs: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Training-contract batch (gt_boxes XYXY in each image's (H, W) frame) -> scalar `loss_*` terms."""
        if self.criterion is None:
            raise DeticError("this Deformable DETR was built without training losses; build it from a config")
        ann_type = batched_inputs[0].get("ann_type", "box")
        weak = ann_type in ("image", "captiontag")
        if ann_type != "box" and not (weak and self.with_image_labels):
            raise DeticError(f"Deformable DETR trains on box annotations (or image labels with WITH_IMAGE_LABELS), "
                             f"not ann_type {ann_type!r}: fix DATALOADER.DATASET_ANN")
        images = [(x["image"].to(self.device).float() - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        layers, enc = self._all_outputs(*pad_with_mask(images))
        targets = targets_from_instances([x["instances"].to(self.device) for x in batched_inputs])
        losses = self.criterion(layers if self.deep_supervision else layers[-1:], targets, enc)
        if self.with_image_labels:
            if weak:
                losses["loss_image"] = self.weak_weight * max_size_image_loss(
                    layers if self.deep_supervision else layers[-1:],
                    [list(x["pos_category_ids"]) for x in batched_inputs])
            else:
                losses["loss_image"] = layers[-1]["pred_logits"].sum() * 0.0
        return losses

    def _groups(self, images: list[torch.Tensor]) -> list[list[int]]:
        """Indices run together: same-size images (no padding, as the demo's one-image calls) or all at once."""
        if not self.group_by_size:
            return [list(range(len(images)))]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(tuple(image.shape), []).append(i)
        return list(groups.values())

    @torch.no_grad()
    def inference(self, batched_inputs: list[dict[str, Any]]) -> list[dict[str, Instances]]:
        """One {"instances": Instances} per input, in original-image pixels: pred_boxes (Boxes XYXY),
        scores (sigmoid probabilities in [0, 1]), pred_classes (0..num_classes-1); TEST.DETECTIONS_PER_IMAGE each."""
        images = [(x["image"].to(self.device).float() - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        results: list[dict[str, Instances] | None] = [None] * len(images)
        for group in self._groups(images):
            batch, mask = pad_with_mask([images[i] for i in group], self.input_bucket)
            outputs = self.detr(batch, mask)
            sizes = [(int(batched_inputs[i].get("height", images[i].shape[-2])),
                      int(batched_inputs[i].get("width", images[i].shape[-1]))) for i in group]
            for i, instances in zip(group, self.post_process(outputs, sizes)):
                results[i] = {"instances": instances}
        return results  # type: ignore[return-value]

    def post_process(self, outputs: dict[str, torch.Tensor], image_sizes: list[tuple[int, int]]) -> list[Instances]:
        """Top-k (query, class) pairs by sigmoid score; cxcywh in [0, 1] -> XYXY pixels of (height, width)."""
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        num_classes = logits.shape[2]
        prob = logits.sigmoid()
        scores, index = torch.topk(prob.view(logits.shape[0], -1), self.test_topk, dim=1)
        query = torch.div(index, num_classes, rounding_mode="floor")
        labels = index % num_classes
        boxes = torch.gather(box_cxcywh_to_xyxy(boxes), 1, query.unsqueeze(-1).repeat(1, 1, 4))
        sizes = boxes.new_tensor(image_sizes)
        img_h, img_w = sizes.unbind(1)
        boxes = boxes * torch.stack([img_w, img_h, img_w, img_h], dim=1)[:, None, :]
        return [Instances(size, pred_boxes=Boxes(b), scores=s, pred_classes=c)
                for s, c, b, size in zip(scores, labels, boxes, image_sizes)]
