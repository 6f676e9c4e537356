"""Deformable DETR exports at a fixed size (closed vocabulary: the graph takes only the image) and
`detect --backend onnxruntime`'s predictor gives PyTorch's detections; a frame of another shape and a dynamic
export are refused in one line. A shrunk model (ResNet-18, one encoder and two decoder layers, 10 queries)
with random weights keeps it quick."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detic_cli.errors import DeticError

CONFIG = "detic-reference/configs/Detic_DeformDETR_LI_R50_4x_ft4x.yaml"
SMALL = ["MODEL.WEIGHTS=", "MODEL.RESNETS.DEPTH=18", "MODEL.RESNETS.RES2_OUT_CHANNELS=64", "MODEL.DETR.NHEADS=2",
         "MODEL.DETR.ENC_LAYERS=1", "MODEL.DETR.DEC_LAYERS=2", "MODEL.DETR.DIM_FEEDFORWARD=64",
         "MODEL.DETR.NUM_OBJECT_QUERIES=10", "TEST.DETECTIONS_PER_IMAGE=40", "INPUT.MIN_SIZE_TEST=64",
         "INPUT.MAX_SIZE_TEST=96"]


@pytest.fixture(scope="module")
def weights(shared_dir, tmp_path_factory):
    from detic_cli.config import load_config
    from detic_cli.modeling.builders import build_model

    torch.manual_seed(0)
    model = build_model(load_config(shared_dir / CONFIG, SMALL))
    path = tmp_path_factory.mktemp("detr") / "detr.pth"
    torch.save({"model": model.state_dict()}, path)
    return path


def test_deformable_detr_exports_and_matches_pytorch(shared_dir, weights, tmp_path):
    import onnxruntime

    from detic_cli.engine.model_setup import load_predictor
    from detic_cli.export.build import export_model, load_ort_predictor
    from detic_cli.export.check import agreement
    from detic_cli.export.export import ExportSettings

    out = tmp_path / "detr.onnx"
    report = export_model(config=shared_dir / CONFIG, weights=weights, out=out, settings=ExportSettings(size=(64, 96)),
                          overrides=SMALL, vocab="lvis")
    check = report.check
    assert check.reference == check.exported == check.paired == 40 and check.unmatched == 0
    assert check.max_box_diff < 0.01 and check.max_score_diff < 1e-4
    assert [i.name for i in onnxruntime.InferenceSession(str(out)).get_inputs()] == ["image"]
    ort, _ = load_ort_predictor(onnx=out, vocab="lvis", threshold=0.0, device="cpu")
    reference, _ = load_predictor(config=shared_dir / CONFIG, weights=weights, overrides=SMALL, vocab="lvis",
                                  threshold=0.0, device="cpu")
    frame = np.random.default_rng(0).integers(0, 255, (100, 150, 3), dtype=np.uint8)
    (got,), (want,) = ort([frame]), reference([frame])
    assert got.image_size == want.image_size == (100, 150) and ort.class_names == reference.class_names
    result = agreement(want, got, threshold=0.0)
    assert result.paired == result.reference == 40 and result.max_box_diff < 0.01, result
    with pytest.raises(DeticError, match="takes exactly 64x96"):
        ort([frame[:, :100]])


def test_deformable_detr_needs_a_fixed_size(shared_dir, weights, tmp_path):
    from detic_cli.export.build import export_model
    from detic_cli.export.export import ExportSettings

    with pytest.raises(DeticError, match="give --size H W"):
        export_model(config=shared_dir / CONFIG, weights=weights, out=tmp_path / "d.onnx", settings=ExportSettings(),
                     overrides=SMALL, vocab="lvis")
    assert not list(tmp_path.iterdir())
