"""Missing training images: one line before training, and one line (not a worker traceback) from a worker."""

from __future__ import annotations

import itertools
import json

import pytest

from detic_cli.config import load_config
from detic_cli.data.build import build_train_loader, worker_error_line
from detic_cli.data.synthetic import IMAGE_DIR, make_detection_dataset
from detic_cli.errors import DeticError


def _cfg(ann, images, workers: int, *extra: str):
    return load_config(None, [f"DATASETS.TRAIN=('coco:{ann}:{images}',)", "INPUT.FORMAT=RGB", "SOLVER.IMS_PER_BATCH=1",
                              "INPUT.CUSTOM_AUG=EfficientDetResizeCrop", "INPUT.TRAIN_SIZE=32",
                              "DATALOADER.ASPECT_RATIO_GROUPING=False", f"DATALOADER.NUM_WORKERS={workers}", *extra])


@pytest.fixture
def dataset(tmp_path):
    ann = make_detection_dataset(tmp_path, num_images=4, size=32, seed=0, style="coco")
    return ann, tmp_path / IMAGE_DIR


def test_images_not_downloaded_is_one_line_before_training(dataset):
    ann, images = dataset
    for png in images.iterdir():
        png.unlink()
    with pytest.raises(DeticError) as info:
        build_train_loader(_cfg(ann, images, 0))
    name = json.loads(ann.read_text())["images"][0]["file_name"]
    assert str(info.value) == (f"training dataset coco:{ann}:{images}: image {images / name} not found; put the "
                               f"dataset's images under {images} (layout as in the original datasets/README.md)")


def test_an_error_in_a_worker_process_stays_one_line(dataset):
    ann, images = dataset
    for png in sorted(images.iterdir())[1:]:  # the first image is there, the others are not
        png.unlink()
    loader = build_train_loader(_cfg(ann, images, 1), seed=0)
    with pytest.raises(DeticError) as info:
        list(itertools.islice(loader, 4))
    message = str(info.value)
    assert "\n" not in message and message.endswith(": file not found") and str(images) in message


def test_worker_error_line():
    wrapped = ("Caught DeticError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               '  File "x.py", line 1, in f\n    raise DeticError(m)\n'
               "detic_cli.errors.DeticError: a.jpg: file not found\n")
    assert worker_error_line(wrapped) == "a.jpg: file not found"
    assert worker_error_line("a.jpg: file not found") == "a.jpg: file not found"


def test_more_categories_than_the_classifier_is_one_line(dataset):
    ann, images = dataset  # the synthetic shapes: 5 categories
    with pytest.raises(DeticError) as info:
        build_train_loader(_cfg(ann, images, 0, "MODEL.ROI_HEADS.NUM_CLASSES=3"))
    assert str(info.value) == (f"training dataset coco:{ann}:{images} has 5 categories, more than "
                               "MODEL.ROI_HEADS.NUM_CLASSES=3: set it to 5, with a ZEROSHOT_WEIGHT_PATH of 5 rows "
                               "(one per category, in category-id order)")
    assert build_train_loader(_cfg(ann, images, 0, "MODEL.ROI_HEADS.NUM_CLASSES=5")).num_records == 4
