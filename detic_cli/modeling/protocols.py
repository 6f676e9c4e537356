"""The typed faces of the detector's parts: what CustomRCNN (and the engine) call, whichever class is built."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from detic_cli.modeling.roi_heads.rescoring import RegionScorer
from detic_cli.modeling.roi_heads.weak_supervision import BatchClassifier
from detic_cli.structures import ImageList, Instances


@runtime_checkable
class Detector(Protocol):
    """A whole detector (CustomRCNN, DeformableDetr): the model contract of DESIGN.md."""

    class_names: list[str]
    input_format: str
    input_bucket: int  # 0, or pad every inference input to a multiple of this many pixels (static shapes)

    @property
    def device(self) -> torch.device: ...

    def set_vocabulary(self, embeddings: torch.Tensor, names: list[str] | None = None) -> None:
        """Use (C, D) class embeddings as the classifier; `names` label the C classes."""

    def inference(self, batched_inputs: list[dict[str, Any]]) -> list[dict[str, Instances]]:
        """One {"instances": Instances} per input, in original-image pixels."""


@runtime_checkable
class ProposalGenerator(Protocol):
    """RPN or CenterNet: class-agnostic proposals from the backbone features."""

    def __call__(self, images: ImageList, features: dict[str, torch.Tensor]) -> list[Instances]:
        """Proposals (`proposal_boxes`, `objectness_logits`) per image of `images` (inference)."""

    def forward_with_losses(self, images: ImageList, features: dict[str, torch.Tensor],
                            gt_instances: list[Instances]) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        """(proposals without gradient, `loss_*` terms) for per-image `gt_instances` (padded-input frame)."""


@runtime_checkable
class ROIHeads(Protocol):
    """Cascade or Res5 ROI heads with the zero-shot (swappable vocabulary) classifier."""

    keep_embeddings: bool

    def __call__(self, features: dict[str, torch.Tensor], proposals: list[Instances]) -> list[Instances]:
        """Detections per image (inference)."""

    def set_vocabulary(self, embeddings: torch.Tensor) -> None:
        """Use (C, D) class embeddings as the classifier."""

    def vocabulary_weight(self) -> torch.Tensor:
        """The (D, C + 1) classifier buffer of the current vocabulary (background column last)."""

    def region_scorer(self) -> RegionScorer:
        """How kept `pred_embeddings` turn into class scores."""

    def forward_with_losses(self, features: dict[str, torch.Tensor], proposals: list[Instances],
                            gt_instances: list[Instances], *,
                            batch: BatchClassifier | None = None) -> dict[str, torch.Tensor]:
        """Box-supervised `loss_*` terms."""

    def forward_image_labels(self, features: dict[str, torch.Tensor], proposals: list[Instances],
                             image_labels: list[list[int]], *, ann_type: str,
                             batch: BatchClassifier | None = None) -> dict[str, torch.Tensor]:
        """Losses of a weakly annotated batch (image labels, captions)."""
