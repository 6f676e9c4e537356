"""Deformable DETR: checkpoint keys, parity weights, the model contract and a full CPU inference."""

from __future__ import annotations

import json

import pytest
import torch

from detic_cli.checkpoint.load import is_derived, load_checkpoint
from detic_cli.config import load_config
from detic_cli.errors import DeticError
from detic_cli.modeling.builders import build_model
from detic_cli.structures import Boxes

CONFIGS = ["Base-DeformDETR_L_R50_4x.yaml", "BoxSup-DeformDETR_L_R50_2x.yaml", "BoxSup-DeformDETR_L_R50_4x.yaml",
           "Detic_DeformDETR_LI_R50_4x_ft4x.yaml"]
PARITY_CONFIG = "Detic_DeformDETR_LI_R50_4x_ft4x.yaml"


def _cfg(shared_dir, name: str):
    return load_config(shared_dir / "detic-reference" / "configs" / name)


@pytest.fixture(scope="module")
def model(shared_dir, parity_checkpoint):
    torch.manual_seed(0)
    m = build_model(_cfg(shared_dir, PARITY_CONFIG))
    load_checkpoint(m, parity_checkpoint(PARITY_CONFIG, 0))
    return m


@pytest.mark.parametrize("name", CONFIGS)
def test_state_dict_matches_manifest(shared_dir, name):
    manifest = json.loads((shared_dir / "parity" / "manifests.json").read_text())[name]
    expected = {k: tuple(v) for k, v in manifest.items() if not is_derived(k)}
    got = {k: tuple(v.shape) for k, v in build_model(_cfg(shared_dir, name)).state_dict().items()
           if not is_derived(k)}
    assert got == expected


def test_parity_checkpoint_loads_with_the_originals_precedence(model, parity_checkpoint):
    """Heads shared with the decoder appear twice in a checkpoint; the `detr.class_embed` copy wins."""
    state = torch.load(parity_checkpoint(PARITY_CONFIG, 0), map_location="cpu", weights_only=True)["model"]
    assert model.detr.transformer.decoder.class_embed is model.detr.class_embed
    assert model.detr.transformer.decoder.bbox_embed is model.detr.bbox_embed
    assert not torch.equal(state["detr.class_embed.6.weight"], state["detr.transformer.decoder.class_embed.6.weight"])
    torch.testing.assert_close(model.detr.class_embed[6].weight, state["detr.class_embed.6.weight"], rtol=0, atol=0)
    torch.testing.assert_close(model.detr.bbox_embed[2].layers[1].bias, state["detr.bbox_embed.2.layers.1.bias"],
                               rtol=0, atol=0)
    torch.testing.assert_close(model.detr.transformer.level_embed, state["detr.transformer.level_embed"])


def test_model_contract(model):
    assert model.input_format == "RGB"
    assert model.device == torch.device("cpu")
    assert model.size_divisibility == 0
    assert model.class_names[0] == "class_0" and len(model.class_names) == 1203
    with pytest.raises(DeticError, match="fixed, learned 1203-class LVIS classifier: --vocab cannot change it"):
        model.set_vocabulary(torch.zeros(80, 512), [f"c{i}" for i in range(80)])
    names = [f"lvis_{i}" for i in range(1203)]
    model.set_vocabulary(torch.zeros(1203, 512), names)
    assert model.class_names == names
    model.set_vocabulary(torch.zeros(1203, 512))
    assert model.class_names == names


def _image(h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(3, h, w, generator=g) * 255).round()


def test_inference_on_a_small_image(model):
    image = _image(160, 224, 0)
    inputs = [{"image": image, "height": 320, "width": 448}]
    instances = model.inference(inputs)[0]["instances"]
    assert instances.image_size == (320, 448)
    assert len(instances) == 300
    assert isinstance(instances.pred_boxes, Boxes)
    scores, boxes = instances.scores, instances.pred_boxes.tensor
    assert torch.all((scores >= 0) & (scores <= 1)) and torch.all(scores[:-1] >= scores[1:])
    assert instances.pred_classes.dtype == torch.int64
    assert int(instances.pred_classes.min()) >= 0 and int(instances.pred_classes.max()) < 1203
    assert torch.isfinite(boxes).all() and torch.all(boxes[:, 2:] >= boxes[:, :2])
    # scores and boxes are the sigmoid / cxcywh outputs of the network, scaled to the original size
    mask = torch.zeros(1, 160, 224, dtype=torch.bool)
    with torch.no_grad():
        out = model.detr(((image - model.pixel_mean) / model.pixel_std)[None], mask)
    prob = out["pred_logits"][0].sigmoid()
    query = torch.div(prob.flatten().topk(300).indices, 1203, rounding_mode="floor")
    torch.testing.assert_close(scores, prob[query, instances.pred_classes])
    cx, cy, w, h = (out["pred_boxes"][0, query] * torch.tensor([448, 320, 448, 320])).unbind(-1)
    torch.testing.assert_close(boxes, torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1))


def test_padded_batch_keeps_the_largest_image_unchanged(model):
    """Mixed sizes in one padded batch (the original's nested tensor): the unpadded image is unaffected."""
    big, small = _image(160, 224, 1), _image(128, 160, 2)
    inputs = [{"image": big, "height": 160, "width": 224}, {"image": small, "height": 256, "width": 320}]
    alone = model.inference(inputs[:1])[0]["instances"]
    model.group_by_size = False
    try:
        batched = model.inference(inputs)
    finally:
        model.group_by_size = True
    first, second = batched[0]["instances"], batched[1]["instances"]
    torch.testing.assert_close(first.scores, alone.scores, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(first.pred_boxes.tensor, alone.pred_boxes.tensor, rtol=1e-4, atol=1e-3)
    assert second.image_size == (256, 320) and len(second) == 300
    assert torch.isfinite(second.pred_boxes.tensor).all() and torch.isfinite(second.scores).all()
