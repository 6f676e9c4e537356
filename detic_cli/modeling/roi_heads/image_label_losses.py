"""Weakly supervised (image-label) losses of Detic and the proposals they are computed on.

For an image annotated only with class labels, each label picks one proposal (by MODEL.ROI_BOX_HEAD.
IMAGE_LABEL_LOSS) whose class logits get a one-hot binary cross-entropy towards that label. Logits are
per image (R_i, C + 1), background last, and the one-hot target spans all C + 1 columns (the
background column is a negative), as the original.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from detic_cli.errors import DeticError
from detic_cli.structures import Boxes, Instances

IMAGE_LABEL_MODES = ("max_size", "max_score", "min_loss", "first", "image", "wsod", "wsddn")


def _one_hot_bce(row: Tensor, label: int) -> Tensor:
    target = torch.zeros_like(row)
    target[label] = 1.0
    return F.binary_cross_entropy_with_logits(row, target, reduction="sum")


def _max_size(logits: Tensor, boxes: Tensor, label: int, softmax: bool) -> Tensor:
    # The last proposal is skipped (it is the whole-image box when ADD_IMAGE_BOX), as the original.
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    ind = int(areas[:-1].argmax()) if len(areas) > 1 else 0
    if softmax:
        return F.cross_entropy(logits[ind:ind + 1], logits.new_tensor([label], dtype=torch.long), reduction="sum")
    return _one_hot_bce(logits[ind], label)


def _max_score(logits: Tensor, label: int) -> Tensor:
    return _one_hot_bce(logits[int(logits[:, label].argmax())], label)


def _min_loss(logits: Tensor, label: int) -> Tensor:
    with torch.no_grad():
        target = torch.zeros_like(logits)
        target[:, label] = 1.0
        per_box = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(dim=1)
    return _one_hot_bce(logits[int(per_box.argmin())], label)


def _wsddn(logits: Tensor, prop_logits: Tensor | None, label: int) -> Tensor:
    if prop_logits is None:
        raise DeticError("IMAGE_LABEL_LOSS wsod/wsddn needs proposal logits: set MODEL.ROI_BOX_HEAD.WITH_SOFTMAX_PROP")
    final = logits.sigmoid() * F.softmax(prop_logits, dim=0)  # (R, C + 1)
    image_score = final.sum(dim=0).clamp(min=1e-10, max=1 - 1e-10)
    target = torch.zeros_like(image_score)
    target[label] = 1.0
    return F.binary_cross_entropy(image_score, target)


def _label_loss_fn(mode: str, softmax_weak_loss: bool) -> Callable[[Tensor, Tensor, Tensor | None, int], Tensor]:
    """(logits, boxes, prop_logits, label) -> loss of one label in one image."""
    if softmax_weak_loss and mode != "max_size":
        raise DeticError(f"SOFTMAX_WEAK_LOSS only works with IMAGE_LABEL_LOSS max_size, not {mode!r}")
    table: dict[str, Callable[[Tensor, Tensor, Tensor | None, int], Tensor]] = {
        "max_size": lambda s, b, p, c: _max_size(s, b, c, softmax_weak_loss),
        "max_score": lambda s, b, p, c: _max_score(s, c),
        "min_loss": lambda s, b, p, c: _min_loss(s, c),
        "first": lambda s, b, p, c: _one_hot_bce(s[0], c),
        "image": lambda s, b, p, c: _one_hot_bce(s[-1], c),  # the whole-image box (ADD_IMAGE_BOX) is last
        "wsod": lambda s, b, p, c: _wsddn(s, p, c),
        "wsddn": lambda s, b, p, c: _wsddn(s, p, c),
    }
    if mode not in table:
        raise DeticError(f"unknown MODEL.ROI_BOX_HEAD.IMAGE_LABEL_LOSS {mode!r}: "
                         f"use one of {', '.join(IMAGE_LABEL_MODES)}")
    return table[mode]


def image_label_loss(logits: list[Tensor], proposal_boxes: list[Tensor], pos_category_ids: list[list[int]], *,
                     mode: str, num_classes: int, cls_id_map: Tensor | None = None,
                     prop_logits: list[Tensor] | None = None, softmax_weak_loss: bool = False) -> Tensor:
    """Image-label loss of one R-CNN stage for B images, averaged as the original (unweighted).

    logits[i]: (R_i, K + 1) class logits of image i's proposals, background last (K = num_classes, or the
    dynamic subset size). proposal_boxes[i]: (R_i, 4) XYXY boxes of those proposals in the network-input
    frame (only `max_size` reads them). pos_category_ids[i]: class ids in [0, num_classes) of image i;
    mapped through `cls_id_map` ((num_classes + 1,), from `sample_batch_classes`) when given.
    prop_logits[i]: (R_i, K + 1) proposal logits (wsod / wsddn only).
    Each label contributes its loss / len(labels); the sum over images is divided by B. Images without
    proposals or labels contribute 0 (but count in B). Returns a scalar (0.0 for B == 0).
    """
    loss_fn = _label_loss_fn(mode, softmax_weak_loss)
    if not logits:
        return torch.zeros(())
    total = logits[0].new_zeros(())
    for i, (scores, labels) in enumerate(zip(logits, pos_category_ids)):
        if scores.shape[0] == 0 or not labels:
            continue
        for label in labels:
            if not 0 <= int(label) < num_classes:
                raise ValueError(f"image label {label} is outside the {num_classes} classes")
            c = int(cls_id_map[int(label)]) if cls_id_map is not None else int(label)
            if c >= scores.shape[1] - 1:
                raise ValueError(f"image label {label} maps to column {c}, not a class of the {scores.shape[1]} logits")
            prop = prop_logits[i] if prop_logits is not None else None
            total = total + loss_fn(scores, proposal_boxes[i], prop, c) / len(labels)
    return total / len(logits)


def image_box(image_size: tuple[int, int], *, image_box_size: float = 1.0, like: Tensor | None = None) -> Tensor:
    """(1, 4) XYXY box covering the central `image_box_size` fraction of an (H, W) image (1.0: [0, 0, W, H])."""
    h, w = image_size
    f = image_box_size
    box = [w * (1.0 - f) / 2.0, h * (1.0 - f) / 2.0, w * (1.0 - (1.0 - f) / 2.0), h * (1.0 - (1.0 - f) / 2.0)]
    return (like.new_tensor(box) if like is not None else torch.tensor(box)).view(1, 4)


def add_image_box(proposals: list[Instances], *, image_box_size: float = 1.0) -> list[Instances]:
    """Append the whole-image proposal (last row) to each image's proposals; inputs are not modified.

    The new row has `proposal_boxes` = `image_box(...)` (XYXY, network-input frame) and
    `objectness_logits` = 1.0, as the original; other tensor fields get a zero row.
    """
    out = []
    for p in proposals:
        boxes = p.proposal_boxes.tensor
        fields = {}
        for name, value in p.get_fields().items():
            if name == "proposal_boxes":
                fields[name] = Boxes(torch.cat([boxes, image_box(p.image_size, image_box_size=image_box_size,
                                                                 like=boxes)]))
            elif name == "objectness_logits":
                fields[name] = torch.cat([value, value.new_ones(1)])
            elif isinstance(value, Tensor):
                fields[name] = torch.cat([value, value.new_zeros((1, *value.shape[1:]))])
            else:
                raise ValueError(f"cannot append the image box to proposal field {name!r}")
        out.append(Instances(p.image_size, **fields))
    return out


def select_ws_proposals(proposals: list[Instances], num: int, *, add_image: bool = False,
                        image_box_size: float = 1.0) -> list[Instances]:
    """Proposals of image-labelled images (WS_NUM_PROPS): clip to the image, keep the first `num`, detach.

    Proposals must be sorted by decreasing score (as the proposal generators return them). With
    `add_image` (ADD_IMAGE_BOX) the whole-image box is appended after the kept ones. Inputs are not
    modified.
    """
    out = []
    for p in proposals:
        p = p[:num]
        boxes = Boxes(p.proposal_boxes.tensor.detach().clone())
        boxes.clip(p.image_size)
        fields = dict(p.get_fields())
        fields["proposal_boxes"] = boxes
        out.append(Instances(p.image_size, **fields))
    return add_image_box(out, image_box_size=image_box_size) if add_image else out
