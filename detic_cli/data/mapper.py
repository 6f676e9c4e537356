"""Record -> training batch element: read, augment, move boxes and masks, build `Instances`.

The element is the dict of the training contract: "image" uint8 (3, H, W) in INPUT.FORMAT order,
"height"/"width" = H, W of the augmented image, "instances" (gt_boxes XYXY in that frame, gt_classes
int64 contiguous, gt_masks when masks are asked for: PolygonMasks with INPUT.MASK_FORMAT polygon, bool
(N, H, W) with bitmask or RLE annotations), "ann_type", "pos_category_ids",
"captions" (caption data), "dataset_source", "image_id", "file_name".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from detic_cli.data.augment import Augmentation, plan_transforms
from detic_cli.data.datasets import Record
from detic_cli.data.image_io import read_image_bgr
from detic_cli.data.masks import MASK_FORMATS, instance_masks
from detic_cli.errors import DeticError
from detic_cli.structures import Boxes, Instances

BOX_EPS = 1e-5  # detectron2 drops boxes with a side of at most this many pixels
CAPTION_TYPES = ("caption", "captiontag")


class TrainMapper:
    """Callable `(record, rng) -> batch element`; `augmentations[s]` is the list for dataset source s."""

    def __init__(
        self,
        *,
        augmentations: Sequence[Sequence[Augmentation]],
        image_format: str,
        ann_types: Sequence[str],
        with_masks: bool,
        mask_format: str = "polygon",
        read_tar_image: Callable[[int], np.ndarray] | None = None,
    ) -> None:
        if image_format not in ("RGB", "BGR"):
            raise DeticError(f"INPUT.FORMAT={image_format}: training reads RGB or BGR images")
        self.augmentations = [list(a) for a in augmentations]
        if mask_format not in MASK_FORMATS:
            raise DeticError(f"INPUT.MASK_FORMAT={mask_format}: expected polygon or bitmask")
        self.image_format, self.ann_types, self.with_masks = image_format, list(ann_types), with_masks
        self.mask_format = mask_format
        self.read_tar_image = read_tar_image

    def read(self, record: Record) -> np.ndarray:
        """(H, W, 3) uint8 BGR pixels of the record's image, checked against its height/width."""
        if record["file_name"]:
            image = read_image_bgr(record["file_name"])
        elif self.read_tar_image is not None and "tar_index" in record:
            image = self.read_tar_image(record["tar_index"])
        else:
            raise DeticError(f"image {record['image_id']} has no file (tar images need DATALOADER.USE_TAR_DATASET)")
        if image.shape[:2] != (record["height"], record["width"]):
            raise DeticError(f"{record['file_name'] or record['image_id']}: image is {image.shape[1]}x"
                             f"{image.shape[0]} but its annotation says {record['width']}x{record['height']}")
        return image

    def __call__(self, record: Record, rng: np.random.Generator) -> dict[str, Any]:
        image = self.read(record)
        source = record["dataset_source"]
        transform = plan_transforms(self.augmentations[source], record["height"], record["width"], rng)
        image = transform.apply_image(image)
        out_h, out_w = image.shape[:2]
        instances = self._instances(record, transform, out_h, out_w)
        if self.image_format == "RGB":
            image = image[:, :, ::-1]
        ann_type = self.ann_types[source]
        element: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "height": out_h, "width": out_w, "instances": instances, "ann_type": ann_type,
            "dataset_source": source, "image_id": record["image_id"],
            "file_name": record["file_name"] or f"tar:{record.get('tar_index', '')}",
        }
        if ann_type == "box":
            element["pos_category_ids"] = sorted(set(instances.gt_classes.tolist()))
        else:
            element["pos_category_ids"] = list(record.get("pos_category_ids", []))
        if ann_type in CAPTION_TYPES:
            element["captions"] = list(record.get("captions", []))
        return element

    def _instances(self, record: Record, transform, out_h: int, out_w: int) -> Instances:
        keep = ~record["crowd"]
        xywh = record["boxes"][keep].astype(np.float64)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        boxes = transform.apply_boxes(xyxy)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, out_w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, out_h)
        nonempty = ((boxes[:, 2] - boxes[:, 0]) > BOX_EPS) & ((boxes[:, 3] - boxes[:, 1]) > BOX_EPS)
        fields: dict[str, Any] = {
            "gt_boxes": Boxes(torch.as_tensor(boxes[nonempty], dtype=torch.float32)),
            "gt_classes": torch.as_tensor(record["classes"][keep][nonempty], dtype=torch.int64),
        }
        if self.with_masks:
            segms = [s for s, k in zip(record["segmentations"] or [], keep) if k]
            kept = [s for s, n in zip(segms, nonempty) if n]
            fields["gt_masks"] = instance_masks(kept, transform, record["height"], record["width"], out_h, out_w,
                                                self.mask_format)
        return Instances((out_h, out_w), **fields)


class MappedRecords(torch.utils.data.Dataset):
    """Map-style dataset keyed by (record index, sample key): the key seeds that sample's augmentation.

    The same key always gives the same element, whichever worker process or run maps it.
    """

    def __init__(self, records: Sequence[Record], mapper: TrainMapper, *, seed: int) -> None:
        self.records, self.mapper, self.seed = records, mapper, int(seed) % (1 << 63)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, sample_key = key
        rng = np.random.default_rng([self.seed, int(sample_key)])
        return self.mapper(self.records[int(index)], rng)
