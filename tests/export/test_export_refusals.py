"""`detic export` and `detect --backend onnxruntime` refuse unsupported options and families in one line,
before any model is built (no weights needed)."""

from __future__ import annotations

import pytest

import detic_cli.cli.export  # noqa: F401  (registers `detic export` on the app)

CONFIGS = "detic-reference/configs"


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "tflite"], "--format tflite: only onnx is supported"),
    (["--opset", "13"], "--opset 13: use 16 to 20"),
    (["--size", "256", "256", "--dynamic"], "give either --size H W or --dynamic, not both"),
    (["--size", "16", "256"], "each side must be at least 32 pixels"),
])
def test_export_refuses_options(run_cli, tmp_path, args, message):
    code, _, err = run_cli("export", "--config", tmp_path / "c.yaml", "--weights", tmp_path / "w.pth",
                           "--out", tmp_path / "m.onnx", *args)
    assert code == 1 and message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()


def test_export_needs_an_onnx_name(run_cli, tmp_path):
    code, _, err = run_cli("export", "--config", tmp_path / "c.yaml", "--weights", tmp_path / "w.pth",
                           "--out", tmp_path / "m.pt")
    assert code == 1 and "give a .onnx file name" in err


@pytest.mark.parametrize(("config", "args", "message"), [
    ("Detic_DeformDETR_LI_R50_4x_ft4x.yaml", [], "Deformable DETR exports at one fixed input size"),
    ("Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml", ["MODEL.ROI_HEADS.NAME=CustomRes5ROIHeads"],
     "CenterNet proposals with CustomRes5ROIHeads cannot be exported"),
])
def test_export_refuses_what_it_cannot_trace(run_cli, shared_dir, tmp_path, config, args, message):
    code, _, err = run_cli("export", "--config", shared_dir / CONFIGS / config, "--weights", tmp_path / "w.pth",
                           "--out", tmp_path / "m.onnx", *args)
    assert code == 1 and message in err and "Traceback" not in err, err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("args", "message"), [
    (["--backend", "onnxruntime"], "--backend onnxruntime needs --onnx MODEL.onnx"),
    (["--onnx", "m.onnx"], "--onnx runs with --backend onnxruntime"),
    (["--backend", "tensorrt"], "--backend tensorrt: expected torch or onnxruntime"),
    (["--backend", "onnxruntime", "--onnx", "m.onnx", "--config", "c.yaml", "--weights", "w.pth"],
     "--config: not with --backend onnxruntime"),
    (["--backend", "onnxruntime", "--onnx", "missing.onnx"], "--onnx missing.onnx: no such file"),
])
def test_detect_backend_refusals(run_cli, shared_dir, args, message):
    code, _, err = run_cli("detect", shared_dir / "parity/images/astronaut.jpg", "--device", "cpu", *args)
    assert code == 1 and message in err and "Traceback" not in err, err


def test_detect_needs_the_sidecar(run_cli, shared_dir, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not a model")
    code, _, err = run_cli("detect", shared_dir / "parity/images/astronaut.jpg", "--backend", "onnxruntime",
                           "--onnx", model)
    assert code == 1 and "sidecar m.onnx.json is missing or unreadable" in err
