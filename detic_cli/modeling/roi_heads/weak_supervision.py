"""Detic's weak supervision inside the ROI heads: image-label and caption losses of one box stage.

Weakly annotated batches (ann_type "image", "caption", "captiontag") carry no boxes: the heads keep the
WS_NUM_PROPS best proposals (plus the whole-image box, last, with ADD_IMAGE_BOX), run their box stages on
them without matching, and report per stage
  loss_image   = IMAGE_LOSS_WEIGHT * image_label_loss(...)          ("image", "captiontag"; 0 for "caption")
  loss_caption = IMAGE_LOSS_WEIGHT * CAPTION_WEIGHT * caption term  ("caption", "captiontag"; 0 for "image")
(the original reports their sum as one `image_loss`), with `loss_cls` / `loss_box_reg` present but zero.
Box batches report `loss_image` (WITH_IMAGE_LABELS) and `loss_caption` (WITH_CAPTION) as zeros, so every
batch type gives the same loss keys. Boxes are XYXY in the padded network-input frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from detic_cli.errors import DeticError
from detic_cli.modeling.roi_heads.caption_loss import caption_logits_loss
from detic_cli.modeling.roi_heads.image_label_losses import image_label_loss, select_ws_proposals
from detic_cli.structures import Instances

WEAK_ANN_TYPES = ("image", "caption", "captiontag")
ANN_TYPES = ("box", *WEAK_ANN_TYPES)


@dataclass
class BatchClassifier:
    """Per-batch classifier overrides, made by the meta-architecture (the original's `classifier_info`).

    classifier: (K + 1, D) class embeddings of the sampled classes, background row last
    (DYNAMIC_CLASSIFIER, see `dynamic_classifier.subset_classifier`); None: the whole vocabulary.
    cls_id_map: int64 (C + 1,) vocabulary id (C = background) -> column in [0, K] (K: background or not
    sampled); set together with `classifier`. caption_features: (B', D) float32 text embeddings, one
    caption per image, of this process (B' = B) or of every process (SYNC_CAPTION_BATCH); None without
    captions. caption_offset: row of this process's first image in `caption_features`.
    """

    classifier: Tensor | None = None
    cls_id_map: Tensor | None = None
    caption_features: Tensor | None = None
    caption_offset: int = 0

    def remap(self, proposals: list[Instances]) -> list[Instances]:
        """Labelled proposals with `gt_classes` renumbered into the sampled subset (copies; inputs unchanged)."""
        if self.cls_id_map is None:
            return proposals
        out = []
        for p in proposals:
            fields = dict(p.get_fields())
            fields["gt_classes"] = self.cls_id_map[p.gt_classes.long()]
            out.append(Instances(p.image_size, **fields))
        return out


@dataclass
class WeakSupervision:
    """Settings of the weak losses (MODEL.ROI_BOX_HEAD.*, WITH_IMAGE_LABELS, MODEL.WITH_CAPTION / SYNC_CAPTION_BATCH).

    image_label_loss: IMAGE_LABEL_LOSS mode (see image_label_losses.IMAGE_LABEL_MODES); ws_num_props:
    proposals kept per image; add_image_box / image_box_size: the appended whole-image proposal;
    neg_cap_weight applies only with sync_caption_batch (1.0 otherwise), as the original.
    """

    image_label_loss: str = "max_size"
    image_loss_weight: float = 0.1
    ws_num_props: int = 128
    add_image_box: bool = False
    image_box_size: float = 1.0
    softmax_weak_loss: bool = False
    caption_weight: float = 1.0
    neg_cap_weight: float = 0.125
    sync_caption_batch: bool = False
    with_image_labels: bool = False
    with_caption: bool = False

    def select(self, proposals: list[Instances]) -> list[Instances]:
        """The weak batch's proposals: top `ws_num_props` per image, clipped, detached, image box last."""
        return select_ws_proposals(proposals, self.ws_num_props, add_image=self.add_image_box,
                                   image_box_size=self.image_box_size)

    def box_batch_zeros(self, like: Tensor, suffix: str = "") -> dict[str, Tensor]:
        """The weak loss keys of a box-annotated batch, all 0 (float32 scalars on `like`'s device)."""
        zero = like.new_zeros((), dtype=torch.float32)
        out = {f"loss_image{suffix}": zero} if self.with_image_labels else {}
        if self.with_caption:
            out[f"loss_caption{suffix}"] = zero
        return out

    def stage_losses(self, logits: Tensor, deltas: Tensor, region_features: Tensor, proposals: list[Instances],
                     cls_score: nn.Module, image_labels: list[list[int]], *, ann_type: str,
                     batch: BatchClassifier, suffix: str = "") -> dict[str, Tensor]:
        """Losses of one box stage on a weak batch.

        logits (R, K + 1) and deltas (R, 4) of the stage for the concatenated `proposals` (R rows, image box
        last per image); region_features (R, F): the box-head output the logits came from; cls_score: the
        stage's ZeroShotClassifier (scores the image-box features against the captions); image_labels[i]:
        vocabulary ids in [0, C) of image i. Keys: loss_cls, loss_box_reg (zeros; the box regressor takes no
        part in the loss, so its parameters get no gradient, as in the original), loss_image, loss_caption
        (with_caption), each + `suffix`.
        """
        if ann_type not in WEAK_ANN_TYPES:
            raise ValueError(f"ann_type {ann_type!r} is not a weak annotation type ({', '.join(WEAK_ANN_TYPES)})")
        zero = logits.sum() * 0.0
        label = self.label_term(logits, proposals, image_labels, batch) if ann_type != "caption" else zero
        out = {"loss_cls": zero, "loss_box_reg": deltas.new_zeros((), dtype=torch.float32), "loss_image": label}
        if "caption" in ann_type:
            out["loss_caption"] = self.caption_term(region_features, proposals, cls_score, batch)
        elif self.with_caption:
            out["loss_caption"] = zero
        return {f"{name}{suffix}": value for name, value in out.items()}

    def label_term(self, logits: Tensor, proposals: list[Instances], image_labels: list[list[int]],
                   batch: BatchClassifier) -> Tensor:
        """IMAGE_LOSS_WEIGHT * the image-label loss (IMAGE_LABEL_LOSS) of the stage's logits."""
        if self.image_label_loss in ("wsod", "wsddn"):
            raise DeticError(f"MODEL.ROI_BOX_HEAD.IMAGE_LABEL_LOSS {self.image_label_loss!r} needs the proposal-score "
                             "head of WITH_SOFTMAX_PROP, which is not supported: use max_size (Detic's choice)")
        per_image = list(logits.split([len(p) for p in proposals]))
        num_classes = len(batch.cls_id_map) - 1 if batch.cls_id_map is not None else logits.shape[1] - 1
        loss = image_label_loss(per_image, [p.proposal_boxes.tensor for p in proposals], image_labels,
                                mode=self.image_label_loss, num_classes=num_classes, cls_id_map=batch.cls_id_map,
                                softmax_weak_loss=self.softmax_weak_loss)
        return self.image_loss_weight * loss.to(logits.device)

    def caption_term(self, region_features: Tensor, proposals: list[Instances], cls_score: nn.Module,
                     batch: BatchClassifier) -> Tensor:
        """IMAGE_LOSS_WEIGHT * CAPTION_WEIGHT * mean over images of the image box's caption loss.

        The image box is the last proposal of each image; images without proposals add 0 but count.
        """
        if batch.caption_features is None:
            raise DeticError("a caption batch needs the caption embeddings: set MODEL.WITH_CAPTION=True (or give "
                             "this dataset DATALOADER.DATASET_ANN 'image' instead of 'caption'/'captiontag')")
        if not self.add_image_box:
            raise DeticError("the caption loss is computed on the whole-image box: set "
                             "MODEL.ROI_BOX_HEAD.ADD_IMAGE_BOX=True")
        sizes = [len(p) for p in proposals]
        last = torch.tensor(sizes).cumsum(0) - 1
        images = [i for i, n in enumerate(sizes) if n]
        total = region_features.sum() * 0.0
        if images:
            logits = cls_score(region_features[last[images].to(region_features.device)],
                               classifier=batch.caption_features)
            neg_weight = self.neg_cap_weight if self.sync_caption_batch else 1.0
            for row, i in enumerate(images):
                total = total + caption_logits_loss(logits[row:row + 1], target_offset=batch.caption_offset + i,
                                                    neg_weight=neg_weight)
        return self.image_loss_weight * self.caption_weight * total / max(len(proposals), 1)
