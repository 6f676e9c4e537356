"""Dynamic classifier (MODEL.DYNAMIC_CLASSIFIER): train each batch against a sampled subset of the vocabulary.

With a very large vocabulary (e.g. 21k ImageNet classes) the box predictor scores only K classes per
batch: the batch's own classes plus classes drawn at random, and the gt classes are renumbered into
that subset (contiguous ids 0..K-1, background K).
"""

from __future__ import annotations

import torch
from torch import Tensor

from detic_cli.modeling.roi_heads.classification_losses import sample_fed_classes


def sample_batch_classes(batch_classes: Tensor, *, num_classes: int, num_sample: int,
                         freq_weight: Tensor | None = None,
                         generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Sample the batch's class subset; returns (class_inds (K,), cls_id_map (num_classes + 1,)), both int64.

    batch_classes: int64 (N,) class ids in [0, num_classes) of the whole batch: the concatenated
    `gt_classes` of box-annotated images, or the concatenated `pos_category_ids` of image-labelled
    images (N may be 0). `freq_weight` (C,): drawing weights of the other classes (box data: the class
    frequencies of CAT_FREQ_PATH ** FED_LOSS_FREQ_WEIGHT); None draws uniformly (image-labelled data,
    as the original). class_inds = sorted unique batch classes, then draws without replacement up to
    K = num_sample (K is larger when the batch has more classes, smaller when fewer can be drawn).
    cls_id_map[c] = position of c in class_inds, and K for every class not sampled and for the
    background id num_classes, so `cls_id_map[gt_classes]` gives ids for logits (R, K + 1).
    """
    if batch_classes.numel() and int(batch_classes.max()) >= num_classes:
        raise ValueError(f"class id {int(batch_classes.max())} is outside the {num_classes} classes")
    if freq_weight is None:
        freq_weight = torch.ones(num_classes, device=batch_classes.device)
    inds = sample_fed_classes(batch_classes.long(), num_classes=num_classes, num_sample=num_sample,
                              freq_weight=freq_weight, generator=generator)
    cls_id_map = torch.full((num_classes + 1,), len(inds), dtype=torch.long, device=batch_classes.device)
    cls_id_map[inds] = torch.arange(len(inds), device=batch_classes.device)
    return inds, cls_id_map


def subset_classifier(zs_weight: Tensor, class_inds: Tensor) -> Tensor:
    """Rows of the sampled classes plus the background: (K + 1, D) from a (D, C + 1) `zs_weight` buffer.

    Pass the result as `classifier=` to the zero-shot classifier to get (R, K + 1) logits, background last.
    """
    cols = torch.cat([class_inds.to(zs_weight.device).long(),
                      torch.tensor([zs_weight.shape[1] - 1], device=zs_weight.device)])
    return zs_weight[:, cols].t().contiguous()


def remap_classes(classes: Tensor, cls_id_map: Tensor) -> Tensor:
    """gt_classes (R,) in [0, C] (C = background) -> ids in [0, K] of the sampled subset (K = background)."""
    return cls_id_map[classes.long()]
