"""Detic's caption loss: the whole-image box of each image should match its own caption among the batch's.

Region-caption logits are computed like class logits of the zero-shot classifier, with the caption
text embeddings as the classes: temperature * cos(projected region feature, caption embedding) + bias.
The target of image i is its own caption (column i + offset); every other caption is a negative.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor


def caption_logits_loss(logits: Tensor, *, target_offset: int = 0, neg_weight: float = 1.0) -> Tensor:
    """Binary cross-entropy of (B, B') region-caption logits, summed per image and averaged over images.

    Row i (image i's whole-image box) has target 1 at column `target_offset + i` and 0 elsewhere;
    loss_i = sum of the positive term + neg_weight * sum of the negative terms (the original applies
    NEG_CAP_WEIGHT only with SYNC_CAPTION_BATCH; pass 1.0 otherwise). Returns sum_i loss_i / B (the
    caller multiplies by CAPTION_WEIGHT). 0 without a graph when B == 0.
    """
    num_images, num_captions = logits.shape
    if num_images == 0:
        return logits.new_zeros(())
    if target_offset < 0 or target_offset + num_images > num_captions:
        raise ValueError(f"captions {target_offset}..{target_offset + num_images - 1} of images are outside "
                         f"the {num_captions} captions")
    target = torch.zeros_like(logits)
    rows = torch.arange(num_images, device=logits.device)
    target[rows, rows + target_offset] = 1.0
    per_entry = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    loss = (per_entry * target).sum() + neg_weight * (per_entry * (1.0 - target)).sum()
    return loss / num_images


def caption_loss(region_features: Tensor, caption_features: Tensor, *, norm_temperature: float = 50.0,
                 bias: Tensor | float | None = None, normalize: bool = True, target_offset: int = 0,
                 neg_weight: float = 1.0) -> Tensor:
    """Caption loss from features: region_features (B, D), caption_features (B', D) -> scalar.

    region_features: row i = image i's whole-image box feature after the zero-shot classifier's
    projection (`cls_score.linear`, D = zs_weight_dim); caption_features: text-encoder embeddings of
    one caption per image (this process's, or all processes' from `gather_caption_features`, then
    `target_offset` = this process's first row). Logits = norm_temperature * normalize(r) @
    normalize(c).T (+ bias, the classifier's `cls_bias` when USE_BIAS < 0); with normalize=False the raw
    dot product (no temperature), as the classifier without NORM_WEIGHT. Equivalent to
    `caption_logits_loss(cls_score(x, classifier=caption_features), ...)`.
    """
    c = caption_features.to(region_features.dtype)
    if normalize:
        logits = norm_temperature * F.normalize(region_features, p=2, dim=1) @ F.normalize(c, p=2, dim=1).t()
    else:
        logits = region_features @ c.t()
    if bias is not None:
        logits = logits + bias
    return caption_logits_loss(logits, target_offset=target_offset, neg_weight=neg_weight)


def gather_caption_features(caption_features: Tensor | None, *, num_rows: int, dim: int,
                            device: torch.device | str | None = None) -> tuple[Tensor | None, int]:
    """SYNC_CAPTION_BATCH: every process's caption embeddings, concatenated in rank order.

    Collective: when torch.distributed is initialised, every process must call this each iteration,
    also those whose batch has no captions (caption_features None): they contribute `num_rows` zero rows
    (the original uses their batch size * CAP_BATCH_RATIO), which the others see as negatives.
    caption_features: (B, dim) or None. Returns (all rows (sum_r B_r, dim), offset of this process's
    first row), or (None, offset) for a process without captions. The gathered rows carry no gradient
    (the text encoder is frozen). Without an initialised process group: (caption_features, 0).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return caption_features, 0
    local = caption_features
    if local is None:
        local = torch.zeros((num_rows, dim), device=device)
    local = local.detach().float().contiguous()
    world, rank = dist.get_world_size(), dist.get_rank()
    sizes = [torch.zeros(1, dtype=torch.long, device=local.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([local.shape[0]], device=local.device))
    counts = [int(s) for s in sizes]
    padded = torch.zeros((max(counts), dim), device=local.device)
    padded[: local.shape[0]] = local
    chunks = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(chunks, padded)
    gathered = torch.cat([chunk[:n] for chunk, n in zip(chunks, counts)])
    offset = sum(counts[:rank])
    return (gathered if caption_features is not None else None), offset
