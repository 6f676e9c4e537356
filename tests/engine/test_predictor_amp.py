"""`Predictor` under `--amp`: detections come back in float32 whatever part of the model ran in half precision."""

from __future__ import annotations

import numpy as np
import torch

from detic_cli.checkpoint.load import load_checkpoint
from detic_cli.config import load_config
from detic_cli.engine.amp import to_float32
from detic_cli.engine.predictor import InputSettings, Predictor
from detic_cli.engine.result import Result
from detic_cli.modeling.builders import build_model
from detic_cli.structures import Boxes, Instances

DETR_CONFIG = "Detic_DeformDETR_LI_R50_4x_ft4x.yaml"


def test_to_float32_converts_half_instance_fields_and_keeps_the_others():
    inst = Instances((20, 30), pred_boxes=Boxes(torch.tensor([[1.0, 2.0, 5.0, 9.5]], dtype=torch.bfloat16)),
                     scores=torch.tensor([0.75], dtype=torch.float16), pred_classes=torch.tensor([3]),
                     pred_masks=torch.ones(1, 20, 30, dtype=torch.bool))
    out = to_float32(inst)
    assert isinstance(out, Instances) and out.image_size == (20, 30) and isinstance(out.pred_boxes, Boxes)
    assert out.pred_boxes.tensor.dtype == torch.float32 and out.scores.dtype == torch.float32
    assert out.pred_boxes.tensor.tolist() == [[1.0, 2.0, 5.0, 9.5]] and out.scores.tolist() == [0.75]
    assert out.pred_classes.dtype == torch.int64 and out.pred_masks.dtype == torch.bool


def test_bf16_deformable_detr_gives_float32_detections(shared_dir, parity_checkpoint):
    """Deformable DETR has no `backbone` attribute to scope, so `--amp` autocasts its whole forward; its
    bf16 scores and boxes used to reach `Result` (numpy has no bfloat16: a traceback in `detic detect`)."""
    torch.manual_seed(0)
    model = build_model(load_config(shared_dir / "detic-reference" / "configs" / DETR_CONFIG))
    load_checkpoint(model, parity_checkpoint(DETR_CONFIG, 0))
    predictor = Predictor(model, inputs=InputSettings(min_size=128, max_size=160), device=torch.device("cpu"),
                          amp=torch.bfloat16)
    image = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    instances = predictor([image])[0]
    assert len(instances) == 300
    assert instances.scores.dtype == torch.float32 and instances.pred_boxes.tensor.dtype == torch.float32
    result = Result.from_instances(instances, vocabulary=predictor.class_names, source="x.jpg", frame_index=None)
    assert len(result) == 300 and result.scores.dtype == np.float32
