"""Static input shapes (`input_bucket`): inference inputs padded to a multiple of N pixels, for CUDA graphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detic_cli.config import load_config
from detic_cli.engine.predictor import InputSettings, Predictor
from detic_cli.errors import DeticError
from detic_cli.modeling.builders import build_model
from detic_cli.modeling.detr.meta_arch import pad_with_mask
from tests.modeling.test_inference_host_syncs import C4, SMALL_C4


def test_detr_padding_rounds_up_to_the_bucket_and_masks_it():
    images = [torch.ones(3, 70, 90), torch.ones(3, 64, 100)]
    batch, mask = pad_with_mask(images, 64)
    assert batch.shape == (2, 3, 128, 128) and mask.shape == (2, 128, 128)
    assert not mask[0, :70, :90].any() and mask[0, 70:].all() and mask[0, :, 90:].all()
    assert pad_with_mask(images)[0].shape == (2, 3, 70, 100)  # off: the largest image only


def test_c4_predictor_pads_every_size_to_the_bucket(shared_dir):
    torch.manual_seed(0)
    model = build_model(load_config(shared_dir / "detic-reference/configs" / C4, SMALL_C4))
    predictor = Predictor(model, inputs=InputSettings(min_size=96, max_size=160), device=torch.device("cpu"),
                          embeddings=np.random.default_rng(0).normal(size=(4, 512)).astype(np.float32),
                          class_names=list("abcd"), input_bucket=64)
    shapes = []
    model.backbone.register_forward_pre_hook(lambda _m, args: shapes.append(tuple(args[0].shape[-2:])))
    frames = [np.random.default_rng(i).integers(0, 255, (h, w, 3), dtype=np.uint8) for i, (h, w) in
              enumerate([(96, 120), (100, 150), (90, 90)])]
    outputs = predictor(frames)
    assert shapes == [(128, 128), (128, 192), (128, 128)]  # 96x120, 96x144, 96x96 after resizing
    for frame, out in zip(frames, outputs):
        boxes = out.pred_boxes.tensor
        assert out.image_size == frame.shape[:2]
        assert (boxes[:, 2] <= frame.shape[1] + 1e-3).all() and (boxes[:, 3] <= frame.shape[0] + 1e-3).all()
    model.train()
    assert model.preprocess_image([{"image": torch.zeros(3, 96, 120)}]).tensor.shape[-2:] == (96, 120)
    with pytest.raises(DeticError, match="input_bucket"):
        Predictor(model, inputs=InputSettings(min_size=96, max_size=160), device=torch.device("cpu"), input_bucket=-1)
