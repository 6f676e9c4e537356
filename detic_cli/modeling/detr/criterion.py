"""Deformable DETR training losses: set-prediction losses after Hungarian matching, and the max-size image loss.

Per decoder output (the last layer, the earlier layers with suffix `_{i}`, and the two-stage encoder
proposals with suffix `_enc`, all matched to class 0 there):
- loss_ce: sigmoid focal loss (alpha FOCAL_ALPHA, gamma 2) of every (query, class) logit against the
  one-hot matched classes (unmatched queries: all zeros), summed and divided by num_boxes; with the
  federated loss only the columns of the sampled classes count.
- loss_bbox: L1 of matched normalised cxcywh boxes, summed / num_boxes.
- loss_giou: 1 - GIoU of matched boxes, summed / num_boxes.
num_boxes = the targets of the batch, averaged over processes, at least 1. As in Detic's wrapper, the
weights (CLS/L1/GIOU_WEIGHT) multiply the last-layer and `_{i}` terms; the `_enc` terms stay unweighted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from detic_cli.errors import DeticError
from detic_cli.layers.losses import giou_loss_xyxy, mean_over_processes
from detic_cli.modeling.detr.box_ops import box_cxcywh_to_xyxy
from detic_cli.modeling.detr.matcher import HungarianMatcher
from detic_cli.modeling.roi_heads.classification_losses import sample_fed_classes
from detic_cli.structures import Instances

__all__ = ["DetrOutput", "SetCriterion", "max_size_image_loss", "targets_from_instances"]

DetrOutput = dict[str, torch.Tensor]  # {"pred_logits": (N, Q, C) logits, "pred_boxes": (N, Q, 4) cxcywh in [0, 1]}


def targets_from_instances(instances: list[Instances]) -> list[dict[str, torch.Tensor]]:
    """gt_boxes XYXY pixels of each Instances' image_size (H, W) -> {"labels" (T,), "boxes" (T, 4) cxcywh / (W, H)}."""
    targets = []
    for inst in instances:
        h, w = inst.image_size
        boxes = inst.gt_boxes.tensor.float() / torch.tensor([w, h, w, h], dtype=torch.float32,
                                                             device=inst.gt_boxes.tensor.device)
        x1, y1, x2, y2 = boxes.unbind(-1)
        cxcywh = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)
        targets.append({"labels": inst.gt_classes.long(), "boxes": cxcywh})
    return targets


class SetCriterion:
    """Unweighted-per-term DETR losses with the Detic weighting applied in `__call__` (see the module doc).

    Plain object (no parameters or buffers), so the model's state dict is unchanged by it.
    """

    def __init__(self, *, num_classes: int, matcher: HungarianMatcher, cls_weight: float, l1_weight: float,
                 giou_weight: float, focal_alpha: float = 0.25, use_fed_loss: bool = False,
                 class_counts: torch.Tensor | None = None, fed_num_sample: int = 50,
                 fed_freq_weight: float = 0.5) -> None:
        self.num_classes = num_classes
        self.matcher = matcher
        self.weights = {"loss_ce": cls_weight, "loss_bbox": l1_weight, "loss_giou": giou_weight}
        self.focal_alpha = focal_alpha
        self.use_fed_loss = use_fed_loss
        self.class_counts = class_counts
        self.fed_num_sample = fed_num_sample
        self.fed_freq_weight = fed_freq_weight
        self._freq: torch.Tensor | None = None

    def _fed_columns(self, matched_classes: torch.Tensor) -> torch.Tensor:
        if self._freq is None:
            if self.class_counts is None:
                raise DeticError("MODEL.DETR.USE_FED_LOSS needs the training class frequencies "
                                 "(MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH): the model was built without class_counts")
            self._freq = self.class_counts.float().cpu() ** self.fed_freq_weight
        return sample_fed_classes(matched_classes, num_classes=self.num_classes, num_sample=self.fed_num_sample,
                                  freq_weight=self._freq)

    def loss_labels(self, logits: torch.Tensor, targets: list[dict[str, torch.Tensor]],
                    matches: list[tuple[torch.Tensor, torch.Tensor]], num_boxes: float) -> torch.Tensor:
        """logits (N, Q, C) -> focal loss summed over queries and classes / num_boxes."""
        onehot = torch.zeros_like(logits)
        matched = []
        for b, (t, (qi, ti)) in enumerate(zip(targets, matches)):
            labels = t["labels"][ti.to(t["labels"].device)]
            onehot[b, qi.to(logits.device), labels.to(logits.device)] = 1.0
            matched.append(labels)
        if self.use_fed_loss:
            cols = self._fed_columns(torch.cat(matched).to(logits.device)).to(logits.device)
            logits, onehot = logits[:, :, cols], onehot[:, :, cols]
        loss = sigmoid_focal_loss(logits.float(), onehot.float(), alpha=self.focal_alpha, gamma=2.0,
                                  reduction="sum")
        return loss / num_boxes

    @staticmethod
    def loss_boxes(boxes: torch.Tensor, targets: list[dict[str, torch.Tensor]],
                   matches: list[tuple[torch.Tensor, torch.Tensor]], num_boxes: float) -> dict[str, torch.Tensor]:
        """boxes (N, Q, 4) cxcywh -> {"loss_bbox": L1 sum / num_boxes, "loss_giou": (1 - GIoU) sum / num_boxes}."""
        src = torch.cat([boxes[b, qi.to(boxes.device)] for b, (qi, _) in enumerate(matches)]).float()
        tgt = torch.cat([t["boxes"][ti.to(t["boxes"].device)] for t, (_, ti) in zip(targets, matches)]).float()
        if len(src) == 0:
            zero = boxes.sum() * 0.0
            return {"loss_bbox": zero, "loss_giou": zero.clone()}
        giou = giou_loss_xyxy(box_cxcywh_to_xyxy(src), box_cxcywh_to_xyxy(tgt), reduction="sum")
        return {"loss_bbox": F.l1_loss(src, tgt, reduction="sum") / num_boxes, "loss_giou": giou / num_boxes}

    def _one_output(self, output: DetrOutput, targets: list[dict[str, torch.Tensor]],
                    num_boxes: float) -> dict[str, torch.Tensor]:
        matches = self.matcher(output["pred_logits"], output["pred_boxes"], targets)
        losses = {"loss_ce": self.loss_labels(output["pred_logits"], targets, matches, num_boxes)}
        losses.update(self.loss_boxes(output["pred_boxes"], targets, matches, num_boxes))
        return losses

    def __call__(self, layers: list[DetrOutput], targets: list[dict[str, torch.Tensor]],
                 enc: DetrOutput | None = None) -> dict[str, torch.Tensor]:
        """layers: decoder outputs first to last (only the last one without deep supervision); enc: the
        encoder proposals (two-stage). Returns loss_ce/bbox/giou (last layer), the same with `_{i}` for
        layers[i] of the earlier ones, and with `_enc` for `enc`: scalar float32 tensors."""
        device = layers[-1]["pred_logits"].device
        count = torch.tensor([float(sum(len(t["labels"]) for t in targets))], device=device)
        num_boxes = float(mean_over_processes(count).clamp(min=1).item())
        losses = {k: v * self.weights[k] for k, v in self._one_output(layers[-1], targets, num_boxes).items()}
        for i, layer in enumerate(layers[:-1]):
            losses.update({f"{k}_{i}": v * self.weights[k] for k, v in self._one_output(layer, targets,
                                                                                         num_boxes).items()})
        if enc is not None:
            binary = [{"labels": torch.zeros_like(t["labels"]), "boxes": t["boxes"]} for t in targets]
            losses.update({f"{k}_enc": v for k, v in self._one_output(enc, binary, num_boxes).items()})
        return losses


def max_size_image_loss(layers: list[DetrOutput], pos_category_ids: list[list[int]]) -> torch.Tensor:
    """Detic's weak loss for image-labelled batches (before WEAK_WEIGHT).

    layers: the decoder outputs (any order); pos_category_ids: per image, its labels in [0, C).
    Per image, label and decoder layer, the query with the largest predicted box area (w * h) gets a
    binary cross-entropy summed over the C classes against the one-hot of that label; the terms are
    summed over layers, averaged over the image's labels, then over the images.
    """
    logits = torch.stack([o["pred_logits"] for o in layers], dim=1)  # (N, L, Q, C)
    boxes = torch.stack([o["pred_boxes"] for o in layers], dim=1)  # (N, L, Q, 4)
    total = logits.sum() * 0.0
    for b, labels in enumerate(pos_category_ids):
        index = (boxes[b, ..., 2] * boxes[b, ..., 3]).argmax(dim=1)  # (L,)
        chosen = logits[b, torch.arange(len(index), device=logits.device), index].float()  # (L, C)
        for label in labels:
            target = torch.zeros_like(chosen)
            target[:, label] = 1.0
            total = total + F.binary_cross_entropy_with_logits(chosen, target, reduction="sum") / len(labels)
    return total / max(len(pos_category_ids), 1)
