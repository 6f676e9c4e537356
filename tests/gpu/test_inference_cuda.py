"""CUDA readiness of the C4 (RPN + Res5) and Deformable DETR inference paths: no host syncs in the hot paths,
batched inference, static shapes (`input_bucket`) and a CUDA-graph replay of the Res5 head.

Marked `gpu`: they run where a CUDA device is present and are skipped elsewhere (tests/conftest.py). No
session has had a GPU yet: the CPU counterparts (tests/modeling/test_inference_host_syncs.py,
tests/modeling/test_input_bucket.py) run everywhere.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from detic_cli.config import load_config
from detic_cli.engine.predictor import InputSettings, Predictor
from detic_cli.modeling.builders import build_model
from detic_cli.modeling.detr.meta_arch import pad_with_mask
from detic_cli.structures import Boxes, Instances
from tests.modeling.test_inference_host_syncs import C4, DETR, SMALL_C4

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


@contextlib.contextmanager
def syncs_are_errors():
    """Any host synchronisation (item, nonzero, blocking copies, ...) raises inside the block."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def _model(shared_dir, name: str, overrides=()):
    torch.manual_seed(0)
    model = build_model(load_config(shared_dir / "detic-reference/configs" / name, list(overrides))).eval()
    if name == C4:
        model.set_vocabulary(torch.randn(5, 512, generator=torch.Generator().manual_seed(1)))
    return model.to(CUDA)


def test_c4_hot_paths_do_not_sync(shared_dir):
    model = _model(shared_dir, C4, SMALL_C4)
    image = torch.randint(0, 255, (3, 96, 128), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    with torch.no_grad():
        images = model.preprocess_image([{"image": image}])
        features = model.backbone(images.tensor)
        anchors, logits, deltas = model.proposal_generator.predict(features)  # warm-up: anchors cached
        proposals = model.proposal_generator.select(images, anchors, logits, deltas)
        model.roi_heads.box_features(features, proposals)  # warm-up: res5 folded once
        with syncs_are_errors():
            anchors, logits, deltas = model.proposal_generator.predict(features)
            decoded = model.proposal_generator.decode(anchors, deltas)
            x = model.roi_heads.box_features(features, proposals)
            scores, _ = model.roi_heads.box_predictor(x)
    assert decoded[0].is_cuda and x.shape[0] == scores.shape[0] == len(proposals[0])


def test_deformable_detr_network_does_not_sync(shared_dir):
    model = _model(shared_dir, DETR)
    g = torch.Generator().manual_seed(0)
    batch, mask = pad_with_mask([torch.randn(3, 128, 128, generator=g).to(CUDA),
                                 torch.randn(3, 112, 128, generator=g).to(CUDA)])
    with torch.no_grad():
        model.detr(batch, mask)  # warm-up: per-level constants made once
        with syncs_are_errors():
            out = model.detr(batch, mask)
    assert out["pred_logits"].shape[:2] == (2, 300) and out["pred_boxes"].is_cuda


@pytest.mark.parametrize("name", [C4, DETR])
def test_batched_cuda_inference_matches_one_image_at_a_time(shared_dir, name):
    model = _model(shared_dir, name, SMALL_C4 if name == C4 else ())
    predictor = Predictor(model, inputs=InputSettings(min_size=128, max_size=160), device=CUDA)
    frames = [np.random.default_rng(i).integers(0, 255, (128, 150, 3), dtype=np.uint8) for i in range(3)]
    together = predictor(frames)
    for frame, batched in zip(frames, together):
        alone = predictor([frame])[0]
        assert len(alone) == len(batched)
        top = min(10, len(alone))
        np.testing.assert_allclose(batched.scores[:top].numpy(), alone.scores[:top].numpy(), atol=1e-3)


def test_static_shapes_replay_the_res5_head_in_a_cuda_graph(shared_dir):
    """With input_bucket every input has one shape; the Res5 head (fixed proposal count) then replays from a
    captured CUDA graph and gives the eager result for a new picture."""
    model = _model(shared_dir, C4, SMALL_C4)
    model.input_bucket = 128
    g = torch.Generator().manual_seed(0)
    pictures = [{"image": torch.randint(0, 255, (3, h, w), generator=g, dtype=torch.uint8)}
                for h, w in ((96, 128), (120, 100))]
    with torch.no_grad():
        inputs = [model.preprocess_image([p]) for p in pictures]
        assert inputs[0].tensor.shape == inputs[1].tensor.shape == (1, 3, 128, 128)
        boxes = torch.tensor([[0.0, 0.0, 64.0, 64.0], [10.0, 20.0, 90.0, 110.0]], device=CUDA).repeat(20, 1)
        static_x = inputs[0].tensor.clone()
        heads = model.roi_heads

        def run(x):
            features = model.backbone(x)
            props = [Instances((128, 128), proposal_boxes=Boxes(boxes))]
            return heads.box_predictor(heads.box_features(features, props))[0]

        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                run(static_x)  # warm-up on a side stream, as CUDA graph capture requires
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = run(static_x)
        static_x.copy_(inputs[1].tensor)
        graph.replay()
        torch.testing.assert_close(static_out, run(inputs[1].tensor), rtol=1e-4, atol=1e-4)
