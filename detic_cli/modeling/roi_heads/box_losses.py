"""Training losses of one Detic box predictor stage: `loss_cls` and `loss_box_reg`.

As Detic's DeticFastRCNNOutputLayers.losses: the class loss is the sigmoid cross-entropy over the C
foreground columns summed and divided by the number of sampled proposals (optionally restricted to
the federated class sample, or to classes seen in training), or the softmax cross-entropy mean; the
box loss is a class-agnostic smooth-L1 on deltas or a GIoU loss on decoded boxes over the foreground
proposals, summed and divided by the number of sampled proposals (detectron2's normalisation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torchvision.ops import generalized_box_iou_loss

from detic_cli.errors import DeticError
from detic_cli.layers.box_transform import Box2BoxTransform
from detic_cli.layers.losses import smooth_l1_loss
from detic_cli.modeling.roi_heads.classification_losses import (
    ZERO_FREQ_EPS,
    sample_fed_classes,
    sigmoid_ce_loss,
    softmax_ce_loss,
)
from detic_cli.structures import Instances

BOX_REG_LOSS_TYPES = ("smooth_l1", "giou")


def box_reg_loss(proposal_boxes: torch.Tensor, gt_boxes: torch.Tensor, deltas: torch.Tensor,
                 gt_classes: torch.Tensor, *, num_classes: int, box2box_transform: Box2BoxTransform,
                 loss_type: str = "smooth_l1", smooth_l1_beta: float = 0.0) -> torch.Tensor:
    """Class-agnostic box loss of (R, 4) `deltas` on (R, 4) XYXY `proposal_boxes` towards `gt_boxes`.

    Only proposals with gt_classes in [0, num_classes) count; the sum is divided by max(R, 1).
    "smooth_l1": on deltas encoded with `box2box_transform` (plain L1 when beta < 1e-5);
    "giou": 1 - GIoU of the decoded boxes.
    """
    fg = (gt_classes >= 0) & (gt_classes < num_classes)
    fg_deltas = deltas.float()[fg]
    if loss_type == "smooth_l1":
        target = box2box_transform.get_deltas(proposal_boxes[fg], gt_boxes[fg])
        loss = smooth_l1_loss(fg_deltas, target, smooth_l1_beta)
    elif loss_type == "giou":
        pred = box2box_transform.apply_deltas(fg_deltas, proposal_boxes[fg])
        loss = generalized_box_iou_loss(pred, gt_boxes[fg].float(), reduction="sum")
    else:
        raise ValueError(f"unknown box regression loss {loss_type!r} (smooth_l1 or giou)")
    return loss / max(gt_classes.numel(), 1)


_NO_COUNTS = ("MODEL.ROI_BOX_HEAD.USE_FED_LOSS / IGNORE_ZERO_CATS need the training class frequencies "
              "(MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH): the model was built without class_counts")


@dataclass
class FastRCNNLosses:
    """Loss settings of the R-CNN box predictors (MODEL.ROI_BOX_HEAD.*) and the class frequencies.

    `class_counts`: (F,) float per-class training image counts, used by the first loss that needs them
    (`use_fed_loss` or `ignore_zero_cats`), so inference never does; weights are
    image_count ** `fed_loss_freq_weight`, padded with zeros up to the vocabulary size.
    """

    use_sigmoid_ce: bool = True
    use_fed_loss: bool = False
    fed_loss_num_cat: int = 50
    ignore_zero_cats: bool = False
    class_counts: torch.Tensor | None = None
    fed_loss_freq_weight: float = 0.5
    box_reg_loss_type: str = "smooth_l1"
    smooth_l1_beta: float = 0.0
    _freq: torch.Tensor | None = field(default=None, init=False, repr=False)
    _on_device: torch.Tensor | None = field(default=None, init=False, repr=False)

    def check(self) -> None:
        """DeticError for settings training cannot use (checked at the first loss, so inference never fails)."""
        if self.box_reg_loss_type not in BOX_REG_LOSS_TYPES:
            raise DeticError(f"MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE {self.box_reg_loss_type!r} is not supported "
                             f"(use one of {', '.join(BOX_REG_LOSS_TYPES)})")
        if (self.use_fed_loss or self.ignore_zero_cats) and self.class_counts is None:
            raise DeticError(_NO_COUNTS)

    def freq_weight(self, num_classes: int, device: torch.device) -> torch.Tensor:
        """(num_classes,) float32 sampling weights on `device` (the counts are read once)."""
        if self._freq is None:
            if self.class_counts is None:
                raise DeticError(_NO_COUNTS)
            self._freq = self.class_counts.float().cpu() ** self.fed_loss_freq_weight
        if len(self._freq) > num_classes:
            raise DeticError(f"the class frequencies (MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH) list {len(self._freq)} "
                             f"classes but the vocabulary has {num_classes}: use the file of the training vocabulary")
        cached = self._on_device
        if cached is None or len(cached) != num_classes or cached.device != torch.device(device):
            padded = torch.cat([self._freq, self._freq.new_zeros(num_classes - len(self._freq))])
            self._on_device = cached = padded.to(device)
        return cached

    def class_loss(self, logits: torch.Tensor, gt_classes: torch.Tensor) -> torch.Tensor:
        """Scalar class loss of (R, C + 1) logits (background last) for int64 (R,) targets in [0, C]."""
        num_classes = logits.shape[1] - 1
        fed = valid = None
        if self.use_fed_loss or self.ignore_zero_cats:
            weight = self.freq_weight(num_classes, logits.device)
            if self.use_fed_loss:
                fed = sample_fed_classes(gt_classes, num_classes=num_classes, num_sample=self.fed_loss_num_cat,
                                         freq_weight=weight)
            if self.ignore_zero_cats:
                valid = weight > ZERO_FREQ_EPS
        loss_fn = sigmoid_ce_loss if self.use_sigmoid_ce else softmax_ce_loss
        return loss_fn(logits.float(), gt_classes, fed_classes=fed, valid_classes=valid)

    def __call__(self, logits: torch.Tensor, deltas: torch.Tensor, proposals: list[Instances],
                 box2box_transform: Box2BoxTransform) -> dict[str, torch.Tensor]:
        """`loss_cls` and `loss_box_reg` of one stage.

        logits (R, C + 1) and deltas (R, 4) for the labelled `proposals` of all images in order
        (fields `proposal_boxes`, `gt_boxes`, `gt_classes`, see roi_heads/sampling.py).
        """
        self.check()
        gt_classes = torch.cat([p.gt_classes for p in proposals]) if proposals else \
            torch.zeros(0, dtype=torch.int64, device=logits.device)
        boxes = torch.cat([p.proposal_boxes.tensor for p in proposals]).float() if proposals else deltas.new_zeros(0, 4)
        gt_boxes = torch.cat([p.gt_boxes.tensor for p in proposals]).float() if proposals else boxes
        return {"loss_cls": self.class_loss(logits, gt_classes),
                "loss_box_reg": box_reg_loss(boxes, gt_boxes, deltas, gt_classes, num_classes=logits.shape[1] - 1,
                                             box2box_transform=box2box_transform,
                                             loss_type=self.box_reg_loss_type, smooth_l1_beta=self.smooth_l1_beta)}
