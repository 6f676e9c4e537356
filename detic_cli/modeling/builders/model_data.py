"""`ModelData`: what a detector is built from besides its config, read by the caller (the engine), never here."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from detic_cli.modeling.text.tokenizer import ClipTokenizer


@dataclass(frozen=True, eq=False)
class ModelData:
    """Training-only inputs of the model builder; inference needs neither.

    class_counts: (C,) float32 number of training images per class, classes ordered by category id (the
    CAT_FREQ_PATH file); the federated loss, IGNORE_ZERO_CATS, the dynamic classifier and Deformable DETR's
    federated loss draw classes by it. tokenizer: CLIP's tokenizer for the caption models' text tower
    (MODEL.WITH_CAPTION), which tokenizes captions while training.
    """

    class_counts: Tensor | None = None
    tokenizer: ClipTokenizer | None = None
