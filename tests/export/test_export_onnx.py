"""`detic export` and `detect --backend onnxruntime` on the R18 parity weights: one dynamic-size export of the
CenterNet2 cascade (vocabulary as a graph input, checked at a small 256 px input to keep it quick) serves every
test here; it must reproduce the PyTorch backend on the R18 parity case (run at the case's 800 px input: the
graph takes any size) and with a second, two-class vocabulary fed at run time."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import detic_cli.cli.export  # noqa: F401  (registers `detic export` on the app)
from tests.conftest import SHARED

pytestmark = pytest.mark.slow

R18 = "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml"
CASE = "parity/cases/r18_astronaut.json"
EXPORT_THRESHOLD = 0.3  # below the case's 0.5: detect raises it in Python
SMALL = ["INPUT.MIN_SIZE_TEST=256", "INPUT.MAX_SIZE_TEST=256"]


def _compare_module():
    spec = importlib.util.spec_from_file_location("compare_detections", SHARED / "parity/compare_detections.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def exported(shared_dir, parity_checkpoint, tmp_path_factory):
    """(onnx path, ExportReport, weights) of the R18 parity model, exported once with the case's vocabulary
    and picture as the probe."""
    from detic_cli.export.build import export_model
    from detic_cli.export.export import ExportSettings

    weights = parity_checkpoint(R18)
    out = tmp_path_factory.mktemp("onnx") / "r18.onnx"
    report = export_model(config=shared_dir / "detic-reference/configs" / R18, weights=weights, out=out,
                          settings=ExportSettings(), overrides=SMALL, threshold=EXPORT_THRESHOLD,
                          vocab=str(shared_dir / "detic-metadata/lvis_v1_clip_a+cname.npy"),
                          probe=shared_dir / "parity/images/astronaut.jpg")
    return out, report, weights


def _detect(run_cli, tmp_path: Path, name: str, *args) -> dict:
    out = tmp_path / f"{name}.json"
    code, _, err = run_cli("detect", SHARED / "parity/images/astronaut.jpg", "--device", "cpu", "--json", out, *args)
    assert code == 0, err
    return json.loads(out.read_text())[0]


def test_export_writes_graph_and_sidecar(exported):
    import onnxruntime

    from detic_cli.utils import sha256_file

    path, report, weights = exported
    check = report.check
    assert check.reference == check.exported == check.paired > 50 and check.unmatched == 0
    assert check.max_box_diff < 0.05 and check.max_score_diff < 1e-4
    meta = json.loads(Path(f"{path}.json").read_text())
    assert meta["weights_sha256"] == sha256_file(weights)
    assert meta["input_size"] is None and meta["dynamic"] and meta["opset"] == 17
    assert meta["channel_order"] == "RGB" and meta["pixel_mean"] == [123.675, 116.28, 103.53]
    assert meta["score_threshold"] == EXPORT_THRESHOLD and meta["config"]["MODEL"]["MASK_ON"] is True
    assert meta["outputs"] == ["boxes", "scores", "classes", "mask_logits"] and meta["mask_size"] == 28
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.shape for i in session.get_inputs()}
    assert inputs["image"][:2] == [1, 3] and isinstance(inputs["image"][2], str)
    assert isinstance(inputs["class_embeddings"][0], str) and inputs["class_embeddings"][1] == 512
    assert [o.type for o in session.get_outputs()][2] == "tensor(int64)"


def test_onnxruntime_matches_the_r18_parity_case(exported, run_cli, tmp_path, shared_dir):
    """The LVIS vocabulary fed at run time; detections against the reference's, the loose pairing."""
    path, _, _ = exported
    case = json.loads((shared_dir / CASE).read_text())
    record = _detect(run_cli, tmp_path, "ort", "--backend", "onnxruntime", "--onnx", path,
                     "--vocab", shared_dir / case["vocab"], "--threshold", case["threshold"],
                     f"INPUT.MIN_SIZE_TEST={case['expected']['min_size_test']}",
                     f"INPUT.MAX_SIZE_TEST={case['expected']['max_size_test']}")
    result = _compare_module().compare(case, record)
    assert result["recall"] >= 0.99 and result["precision"] >= 0.99, result
    assert result["mask_iou"] is not None and result["mask_iou"] >= 0.95, result
    assert len(record["instances"]) == len(case["expected"]["scores"])


def test_second_vocabulary_at_run_time(exported, run_cli, tmp_path, shared_dir, parity_checkpoint, parity_clip):
    """The same graph with "cat,dog" (CLIP-encoded at run time) matches PyTorch with that vocabulary."""
    path, _, weights = exported
    vocab = ["--vocab", "cat,dog", "--clip-checkpoint", parity_clip, "--threshold", EXPORT_THRESHOLD]
    ort = _detect(run_cli, tmp_path, "ort", "--backend", "onnxruntime", "--onnx", path, *vocab)
    torch_record = _detect(run_cli, tmp_path, "torch", "--config", shared_dir / "detic-reference/configs" / R18,
                           "--weights", weights, *vocab, *SMALL)
    assert torch_record["instances"], "the two-class vocabulary should detect something on the parity weights"
    assert {i["class_name"] for i in ort["instances"]} <= {"cat", "dog"}
    exp = torch_record["instances"]
    case = {"expected": {"boxes": [i["box_xyxy"] for i in exp], "scores": [i["score"] for i in exp],
                         "classes": [i["class_index"] for i in exp], "masks_rle": [i["mask_rle"] for i in exp]}}
    result = _compare_module().compare(case, ort)
    assert result["recall"] >= 0.99 and result["precision"] >= 0.99, result
    assert result["mask_iou"] >= 0.95, result


def test_detect_refuses_a_lower_threshold_and_torch_options(exported, run_cli, shared_dir):
    path, _, _ = exported
    image = shared_dir / "parity/images/astronaut.jpg"
    code, _, err = run_cli("detect", image, "--backend", "onnxruntime", "--onnx", path, "--threshold", "0.1")
    assert code == 1 and "exported with threshold 0.3" in err and "Traceback" not in err
    code, _, err = run_cli("detect", image, "--backend", "onnxruntime", "--onnx", path, "--amp", "fp16")
    assert code == 1 and "--amp: not with --backend onnxruntime" in err
    code, _, err = run_cli("detect", image, "--backend", "onnxruntime", "--onnx", path, "--pred-all-class")
    assert code == 1 and "re-export with --pred-all-class" in err
    code, _, err = run_cli("detect", image, "--backend", "onnxruntime", "--onnx", path,
                           "MODEL.ROI_HEADS.NMS_THRESH_TEST=0.3")
    assert code == 1 and "only INPUT.MIN_SIZE_TEST and INPUT.MAX_SIZE_TEST can change at run time" in err


def test_failed_check_writes_nothing(shared_dir, parity_checkpoint, tmp_path):
    """A difference over the tolerance (here a negative one, so any) fails the export: no .onnx, no sidecar,
    no temporary file left; a fixed --size export traces (small input to keep it quick)."""
    from detic_cli.errors import DeticError
    from detic_cli.export.build import export_model
    from detic_cli.export.export import ExportSettings

    out = tmp_path / "model.onnx"
    with pytest.raises(DeticError, match="beyond the tolerance.*not written"):
        export_model(config=shared_dir / "detic-reference/configs" / R18, weights=parity_checkpoint(R18), out=out,
                     settings=ExportSettings(size=(128, 160), box_tol=-1.0, masks=False),
                     overrides=["INPUT.MIN_SIZE_TEST=128", "INPUT.MAX_SIZE_TEST=160"],
                     vocab=str(shared_dir / "detic-metadata/lvis_v1_clip_a+cname.npy"), threshold=0.05)
    assert list(tmp_path.iterdir()) == []


class _FakeSession:
    """Records the image it is given; returns no detections."""

    def __init__(self) -> None:
        self.fed: dict = {}

    def get_inputs(self):
        return [type("I", (), {"name": n})() for n in ("image", "class_embeddings")]

    def get_outputs(self):
        return [type("O", (), {"name": n})() for n in ("boxes", "scores", "classes")]

    def run(self, _names, feed):
        self.fed = feed
        return [np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64)]


def test_fixed_size_input_is_padded_with_the_mean_or_refused():
    from detic_cli.engine.predictor import InputSettings
    from detic_cli.errors import DeticError
    from detic_cli.export.ort_backend import OrtPredictor

    session = _FakeSession()
    predictor = OrtPredictor(session, inputs=InputSettings(min_size=64, max_size=96, channel_order="RGB"),
                             pixel_mean=[1.0, 2.0, 3.0], size=(96, 96), embeddings=np.ones((2, 4)),
                             class_names=["a", "b"])
    frame = np.full((100, 150, 3), 200, np.uint8)
    (result,) = predictor([frame])
    image = session.fed["image"]
    assert image.shape == (1, 3, 96, 96) and len(result) == 0 and result.image_size == (100, 150)
    assert (image[0, :, :64, :96] == 200).all() and (image[0, :, 64:, :].reshape(3, -1).T == [1, 2, 3]).all()
    assert session.fed["class_embeddings"].dtype == np.float32
    small = OrtPredictor(session, inputs=InputSettings(min_size=64, max_size=96), pixel_mean=[0, 0, 0],
                         size=(32, 32), embeddings=np.ones((2, 4)), class_names=None)
    with pytest.raises(DeticError, match="does not fit this model's fixed 32x32 input"):
        small([frame])
