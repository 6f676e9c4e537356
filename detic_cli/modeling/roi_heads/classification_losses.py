"""Box-classification losses of a Detic R-CNN stage: sigmoid / softmax cross-entropy and the federated loss.

Conventions shared by every function here: class logits are (R, C + 1) with the background column
last; `gt_classes` are int64 (R,) in [0, C], where C means background. Class frequency weights are
per-class training image counts (read by detic_cli.data.class_frequencies) ** FED_LOSS_FREQ_WEIGHT.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Classes whose frequency weight is at most this count as "never seen" (IGNORE_ZERO_CATS).
ZERO_FREQ_EPS = 1e-4


def sample_fed_classes(gt_classes: Tensor, *, num_classes: int, num_sample: int, freq_weight: Tensor,
                       generator: torch.Generator | None = None) -> Tensor:
    """Class subset of the federated loss: int64 (K,) on gt_classes' device.

    The unique values of `gt_classes` (sorted; they include the background id C = num_classes when a
    background proposal is present) come first. If there are fewer than `num_sample` of them, classes
    not yet present are drawn without replacement with probability proportional to `freq_weight`
    ((C,), shorter vectors are padded with zeros) until K = num_sample; classes of weight 0 and the
    background are never drawn, so K is smaller when too few classes can be drawn. The drawn part is
    in draw order (not sorted), as the original.
    """
    present = torch.unique(gt_classes)
    if len(present) >= num_sample:
        return present
    prob = torch.zeros(num_classes + 1, dtype=torch.float32, device=gt_classes.device)
    w = freq_weight.detach().to(device=prob.device, dtype=torch.float32).flatten()[:num_classes]
    prob[: len(w)] = w
    prob[num_classes] = 0.0
    prob[present] = 0.0
    n_more = min(num_sample - len(present), int((prob > 0).sum()))
    if n_more <= 0:
        return present
    more = torch.multinomial(prob, n_more, replacement=False, generator=generator)
    return torch.cat([present, more])


def _column_weight(num_classes: int, fed_classes: Tensor | None, valid_classes: Tensor | None,
                   ref: Tensor) -> Tensor | None:
    """(C,) float weight of each foreground column, or None when every column counts."""
    weight = None
    if fed_classes is not None:
        mask = ref.new_zeros(num_classes + 1)
        mask[fed_classes.to(ref.device)] = 1.0
        weight = mask[:num_classes]
    if valid_classes is not None:
        v = valid_classes.to(device=ref.device, dtype=ref.dtype)
        weight = v if weight is None else weight * v
    return weight


def sigmoid_ce_loss(logits: Tensor, gt_classes: Tensor, *, fed_classes: Tensor | None = None,
                    valid_classes: Tensor | None = None) -> Tensor:
    """Per-class binary cross-entropy over the C foreground columns, summed and divided by R.

    logits (R, C + 1), background last (its column never enters the loss); gt_classes int64 (R,) in
    [0, C], C = background (all-zero target row). `fed_classes` (K,) int64 ids in [0, C] (from
    `sample_fed_classes`): only those columns count (federated loss, USE_FED_LOSS). `valid_classes`
    (C,) bool/float: columns with 0 are ignored (IGNORE_ZERO_CATS: `freq_weight > ZERO_FREQ_EPS`).
    Returns a scalar; 0 without a graph when there are no proposals (as the original).
    """
    if logits.numel() == 0:
        return logits.new_zeros(())
    num_rois, num_classes = logits.shape[0], logits.shape[1] - 1
    target = logits.new_zeros(num_rois, num_classes + 1)
    target[torch.arange(num_rois, device=logits.device), gt_classes] = 1.0
    loss = F.binary_cross_entropy_with_logits(logits[:, :-1], target[:, :-1], reduction="none")  # (R, C)
    weight = _column_weight(num_classes, fed_classes, valid_classes, logits.detach())
    if weight is not None:
        loss = loss * weight.view(1, num_classes)
    return loss.sum() / num_rois


def softmax_ce_loss(logits: Tensor, gt_classes: Tensor, *, fed_classes: Tensor | None = None,
                    valid_classes: Tensor | None = None) -> Tensor:
    """Softmax cross-entropy over C + 1 columns, mean over proposals (weighted mean with class weights).

    logits (R, C + 1), gt_classes int64 (R,) in [0, C]. With `valid_classes` (C,) (IGNORE_ZERO_CATS,
    which takes precedence as in the original) or `fed_classes` (K,), target classes outside the set get
    weight 0 and the mean is over the remaining weight; the background always has weight 1.
    Returns a scalar; 0 without a graph when there are no proposals.
    """
    if logits.numel() == 0:
        return logits.new_zeros(())
    num_classes = logits.shape[1] - 1
    if valid_classes is not None:
        fed_classes = None
    weight = _column_weight(num_classes, fed_classes, valid_classes, logits.detach())
    if weight is None:
        return F.cross_entropy(logits, gt_classes, reduction="mean")
    weight = torch.cat([weight, weight.new_ones(1)])
    return F.cross_entropy(logits, gt_classes, weight=weight, reduction="mean")
