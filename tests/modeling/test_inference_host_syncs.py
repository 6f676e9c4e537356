"""The inference hot paths read nothing back to the host: RPN head + anchors + decoding, the Res5 head's
pooling, res5 and box predictor, and the whole Deformable DETR network. On CUDA each `.item()`, `.tolist()`,
`.cpu()`, `bool(tensor)` or `nonzero()` waits for the GPU; here they are patched to fail, so a CPU run
finds them (tests/gpu checks the same paths with CUDA's own sync detection)."""

from __future__ import annotations

import contextlib

import pytest
import torch

from detic_cli.config import load_config
from detic_cli.layers import roi_pooler as roi_pooler_module
from detic_cli.modeling.builders import build_model
from detic_cli.modeling.detr.meta_arch import pad_with_mask
from detic_cli.modeling.roi_heads import res5 as res5_module

C4 = "BoxSup_OVCOCO_CLIP_R50_1x.yaml"
DETR = "BoxSup-DeformDETR_L_R50_4x.yaml"
SMALL_C4 = ["MODEL.RESNETS.RES2_OUT_CHANNELS=32", "MODEL.RESNETS.WIDTH_PER_GROUP=8",
            "MODEL.RESNETS.STEM_OUT_CHANNELS=16", "MODEL.PIXEL_STD=[57.0,57.0,57.0]",
            "MODEL.RPN.PRE_NMS_TOPK_TEST=300", "MODEL.RPN.POST_NMS_TOPK_TEST=40"]
SYNCING = ["item", "tolist", "cpu", "numpy", "nonzero", "__bool__", "__int__", "__float__"]


@contextlib.contextmanager
def no_host_reads(monkeypatch):
    calls: list[str] = []

    def fail(name):
        def method(self, *args, **kwargs):
            calls.append(name)
            raise AssertionError(f"Tensor.{name} called in an inference hot path (a host sync on CUDA)")
        return method

    with monkeypatch.context() as patch:
        for name in SYNCING:
            patch.setattr(torch.Tensor, name, fail(name))
        yield calls


def _c4(shared_dir):
    torch.manual_seed(0)
    model = build_model(load_config(shared_dir / "detic-reference/configs" / C4, SMALL_C4)).eval()
    model.set_vocabulary(torch.randn(5, 512, generator=torch.Generator().manual_seed(1)))
    return model


def test_c4_proposals_and_res5_head_do_not_read_back(shared_dir, monkeypatch):
    model = _c4(shared_dir)
    # the device path (CUDA's): the CPU-only gather pooling reads sample counts back by design
    monkeypatch.setattr(res5_module, "pools_by_gather", lambda feature: False)
    monkeypatch.setattr(roi_pooler_module, "pools_by_gather", lambda feature: False)
    image = torch.randint(0, 255, (3, 96, 128), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    with torch.no_grad():
        images = model.preprocess_image([{"image": image}])
        features = model.backbone(images.tensor)
        anchors, logits, deltas = model.proposal_generator.predict(features)
        with no_host_reads(monkeypatch) as calls:
            with pytest.raises(AssertionError, match="Tensor.item"):
                torch.ones(1).item()  # the patch is live
            calls.clear()
            again = model.proposal_generator.predict(features)  # head, cached anchors, flattening
            decoded = model.proposal_generator.decode(anchors, deltas)
        proposals = model.proposal_generator.select(images, anchors, logits, deltas)  # NMS: data-dependent
        with no_host_reads(monkeypatch):
            x = model.roi_heads.box_features(features, proposals)
            scores, box_deltas = model.roi_heads.box_predictor(x)
    assert calls == []
    assert torch.equal(again[1][0], logits[0]) and decoded[0].shape == (1, anchors[0].shape[0], 4)
    assert x.shape == (len(proposals[0]), 256) and scores.shape[0] == box_deltas.shape[0] == len(proposals[0])


@pytest.mark.usefixtures("one_thread")
def test_deformable_detr_network_does_not_read_back(shared_dir, monkeypatch):
    torch.manual_seed(0)
    model = build_model(load_config(shared_dir / "detic-reference/configs" / DETR)).eval()
    g = torch.Generator().manual_seed(0)
    images = [torch.randn(3, 128, 128, generator=g), torch.randn(3, 112, 128, generator=g)]
    batch, mask = pad_with_mask(images)  # two sizes: the padding mask is exercised too
    with torch.no_grad(), no_host_reads(monkeypatch):
        out = model.detr(batch, mask)
    assert out["pred_logits"].shape[:2] == out["pred_boxes"].shape[:2] == (2, 300)
