"""Fixtures shared by the command-line tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

CROP_CATEGORIES = {1: "person", 17: "cat", 18: "dog"}  # COCO ids


@pytest.fixture(scope="session")
def parity_crops(shared_dir):
    """Factory: write crops of the parity pictures as a COCO dataset: `images` gets `<i>.jpg` (150x200 at most)
    and the returned dict has one box + polygon (the centre 60% x 80%) per image, ids 100 + i, categories
    CROP_CATEGORIES. `crops` are (picture, x0, y0, COCO category id)."""

    def write(images: Path, crops: list[tuple[str, int, int, int]]) -> dict:
        gt: dict = {"images": [], "annotations": [],
                    "categories": [{"id": k, "name": v} for k, v in CROP_CATEGORIES.items()]}
        for i, (name, x0, y0, cat) in enumerate(crops):
            pixels = cv2.imread(str(shared_dir / f"parity/images/{name}.jpg"))[y0:y0 + 150, x0:x0 + 200]
            cv2.imwrite(str(images / f"{i}.jpg"), pixels)
            h, w = pixels.shape[:2]
            gt["images"].append({"id": 100 + i, "file_name": f"{i}.jpg", "height": h, "width": w})
            x, y, bw, bh = w * 0.2, h * 0.1, w * 0.6, h * 0.8
            gt["annotations"].append({"id": i + 1, "image_id": 100 + i, "category_id": cat, "bbox": [x, y, bw, bh],
                                      "area": bw * bh, "iscrowd": 0,
                                      "segmentation": [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]})
        return gt

    return write
