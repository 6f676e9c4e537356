"""Per-batch inputs of Detic's training that the meta-architecture makes before the ROI heads run: the dynamic
classifier's class subset (MODEL.DYNAMIC_CLASSIFIER) and the caption embeddings (MODEL.WITH_CAPTION).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from detic_cli.errors import DeticError
from detic_cli.modeling.dynamic_classifier import sample_batch_classes, subset_classifier
from detic_cli.modeling.text.text_encoder import TextEncoder


@dataclass
class DynamicClassSampler:
    """Samples each batch's class subset: the batch's classes first, then draws up to `num_sample` classes
    (NUM_SAMPLE_CATS). Box batches draw with the (F,) per-class training image counts `class_counts` (from
    CAT_FREQ_PATH) ** `freq_weight_power` (FED_LOSS_FREQ_WEIGHT); image-labelled batches
    draw uniformly over the whole vocabulary, as the original.
    """

    num_sample: int = 50
    class_counts: Tensor | None = None
    freq_weight_power: float = 0.5
    _freq: Tensor | None = field(default=None, init=False, repr=False)

    def freq_weight(self, num_classes: int) -> Tensor:
        """(F,) float32 drawing weights, F <= num_classes (classes beyond F are never drawn)."""
        if self._freq is None:
            if self.class_counts is None:
                raise DeticError("MODEL.DYNAMIC_CLASSIFIER draws classes by the training class frequencies "
                                 "(MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH): the model was built without class_counts")
            self._freq = self.class_counts.float().cpu() ** self.freq_weight_power
        if len(self._freq) > num_classes:
            raise DeticError(f"the class frequencies (MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH) list {len(self._freq)} "
                             f"classes but the vocabulary has {num_classes}: use the file of the training vocabulary")
        return self._freq

    def sample(self, batch_classes: Tensor, *, box_data: bool, zs_weight: Tensor) -> tuple[Tensor, Tensor]:
        """(classifier (K + 1, D) on zs_weight's device, cls_id_map int64 (C + 1,)).

        batch_classes: int64 (N,) vocabulary ids in [0, C) of the batch (box data: every gt_classes; image
        data: every pos_category_ids); zs_weight: the heads' (D, C + 1) vocabulary buffer.
        """
        num_classes = zs_weight.shape[1] - 1
        freq = self.freq_weight(num_classes).to(zs_weight.device) if box_data else None
        inds, cls_id_map = sample_batch_classes(batch_classes.to(zs_weight.device).long(), num_classes=num_classes,
                                                num_sample=self.num_sample, freq_weight=freq)
        return subset_classifier(zs_weight, inds), cls_id_map


def encode_captions(text_encoder: TextEncoder, captions: list[list[str]], device: torch.device) -> Tensor:
    """(B, D) float32 embeddings of one caption drawn at random per image (no gradient).

    captions[i]: the captions of image i (at least one). Over-long captions are cut to a random window
    of the encoder's context (77 tokens), as Detic's training does.
    """
    picks = []
    for i, options in enumerate(captions):
        if not options:
            raise DeticError(f"image {i} of a caption batch has no captions: caption datasets need a "
                             "'captions' list per image (or use DATALOADER.DATASET_ANN 'image')")
        picks.append(options[int(torch.randint(len(options), (1,)))])
    with torch.no_grad():
        ids = text_encoder.tokenize(picks, random_crop=True).ids
        return text_encoder.encode_tokens(ids).float().to(device)
