"""A batch through the Predictor gives what the demo gives one image at a time (no cross-image padding)."""

from __future__ import annotations

import numpy as np
import torch

from detic_cli.config import load_config
from detic_cli.data.image_io import read_image_bgr
from detic_cli.data.transforms import resize_image
from detic_cli.engine.model_setup import predictor_from_config
from detic_cli.engine.predictor import same_size_groups

CONFIG = "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml"


def test_same_size_groups_keep_first_seen_order():
    inputs = [{"image": torch.zeros(3, h, w)} for h, w in ((4, 6), (8, 6), (4, 6), (8, 6), (2, 2))]
    assert same_size_groups(inputs) == [[0, 2], [1, 3], [4]]


def test_mixed_sizes_in_one_batch_equal_single_images(shared_dir, parity_checkpoint):
    cfg = load_config(shared_dir / "detic-reference/configs" / CONFIG,
                      ["INPUT.MIN_SIZE_TEST=160", "INPUT.MAX_SIZE_TEST=320", "MODEL.ROI_HEADS.SCORE_THRESH_TEST=0.3"])
    predictor = predictor_from_config(cfg, weights=parity_checkpoint(CONFIG, 0), device=torch.device("cpu"),
                                      embeddings=np.load(shared_dir / "detic-metadata/coco_clip_a+cname.npy"))
    cat = read_image_bgr(shared_dir / "parity/images/chelsea.jpg")
    # 160 x 240 and 160 x 200 network inputs: padded to 160 x 256 and 160 x 224 alone, differently together
    wide, narrow = resize_image(cat, (100, 150)), resize_image(cat[:, 50:], (120, 150))
    batched = predictor([wide, narrow, wide])
    alone = [predictor([wide])[0], predictor([narrow])[0]]
    assert len(alone[0]) > 0 and len(alone[1]) > 0
    for got, want in zip(batched, [alone[0], alone[1], alone[0]]):
        assert got.image_size == want.image_size
        torch.testing.assert_close(got.pred_boxes.tensor, want.pred_boxes.tensor, rtol=1e-5, atol=1e-3)
        torch.testing.assert_close(got.scores, want.scores, rtol=1e-5, atol=1e-5)
        assert torch.equal(got.pred_classes, want.pred_classes)
        assert torch.equal(got.pred_masks, want.pred_masks)
