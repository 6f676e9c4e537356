"""`Detector` on the R18 parity weights: the CLI's detections, inputs, vocabulary swaps, thresholds."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from detic_cli import Detector, DeticError, Result
from detic_cli.engine.tracking import TrackSettings
from tests.api.conftest import SMALL
from tests.conftest import SHARED


@pytest.fixture(scope="module")
def plain_detector(r18):
    """The R18 parity detector at SMALL, threshold 0.5, no embeddings: loaded once for the tests that only
    call it (never set_vocabulary)."""
    _, config, weights, vocab, _ = r18
    return Detector(config=config, weights=weights, vocab=str(vocab), device="cpu", threshold=0.5, overrides=SMALL)


def _compare_strict(case: dict, record: dict) -> dict:
    spec = importlib.util.spec_from_file_location("compare_detections", SHARED / "parity/compare_detections.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.compare_strict(case, record)


def test_detector_gives_the_cli_record_and_the_reference_detections(r18, astronaut, run_cli, tmp_path):
    case, config, weights, vocab, _ = r18
    result = Detector(config=config, weights=weights, vocab=str(vocab), device="cpu",
                      threshold=case["threshold"])(astronaut)
    assert isinstance(result, Result)
    record = result.to_dict()
    assert _compare_strict(case, record)["identical"]
    assert len(record["instances"]) == 112 and record["instances"][0]["mask_rle"]["size"] == [512, 512]
    out = tmp_path / "d.json"
    code, _, err = run_cli("detect", astronaut, "--config", config, "--weights", weights, "--vocab", vocab,
                           "--threshold", case["threshold"], "--device", "cpu", "--json", out)
    assert code == 0, err
    assert json.loads(out.read_text()) == [record]


def test_inputs_array_rgb_pil_list_and_folder(small_detector, astronaut, tmp_path):
    from PIL import Image

    base = small_detector(astronaut)
    bgr = cv2.imread(astronaut)
    from_array = small_detector(bgr)
    assert from_array.source == "<array>" and from_array.frame_index is None
    np.testing.assert_array_equal(from_array.boxes, base.boxes)
    from_rgb = small_detector(np.ascontiguousarray(bgr[:, :, ::-1]), channels="rgb")
    np.testing.assert_array_equal(from_rgb.scores, base.scores)
    from_pil = small_detector(Image.open(astronaut))
    np.testing.assert_array_equal(from_pil.class_ids, base.class_ids)
    small = cv2.resize(bgr, (160, 160))
    cv2.imwrite(str(tmp_path / "b.png"), small)
    cv2.imwrite(str(tmp_path / "a.png"), bgr)
    listed = small_detector([str(tmp_path / "b.png"), bgr])
    assert not isinstance(listed, Result)
    assert [r.image_size for r in listed] == [(160, 160), (512, 512)]
    assert [r.source for r in small_detector(tmp_path)] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]


def test_video_frames_stream_in_order(small_detector, astronaut, tmp_path):
    path = tmp_path / "clip.avi"
    frame = cv2.resize(cv2.imread(astronaut), (128, 128))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (128, 128))
    for _ in range(3):
        writer.write(frame)
    writer.release()
    results = small_detector(str(path))
    first = next(results)
    assert first.frame_index == 0 and first.source == str(path)
    assert [r.frame_index for r in results] == [1, 2]


def test_track_gives_each_frame_track_ids(small_detector, astronaut, tmp_path):
    path = tmp_path / "pan.avi"
    picture = cv2.resize(cv2.imread(astronaut), (136, 128))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (128, 128))
    for i in range(2):
        writer.write(np.ascontiguousarray(picture[:, 2 * i:2 * i + 128]))
    writer.release()
    results = list(small_detector.track(str(path), buffer=5, thresh=0.6))
    assert [r.frame_index for r in results] == [0, 1]
    assert len(results[0]) and set(results[0].track_ids.tolist()) == {-1}
    assert (results[1].track_ids >= 0).any()  # a track started on frame 0 continued on frame 1
    with pytest.raises(DeticError, match="not both"):
        next(small_detector.track(str(path), TrackSettings(), buffer=5))


def test_set_vocabulary_swaps_classes_without_reloading(r18, astronaut):
    from detic_cli import Detector

    _, config, weights, vocab, _ = r18
    detector = Detector(config=config, weights=weights, vocab=str(vocab), device="cpu",
                        overrides=("INPUT.MIN_SIZE_TEST=320", "INPUT.MAX_SIZE_TEST=512"))
    model = detector._predictor.model
    base = detector(astronaut)
    rows = sorted(set(base.class_ids.tolist()))[:3]
    names = [f"kept_{r}" for r in rows]
    detector.set_vocabulary(np.load(vocab)[rows], names=names)
    assert detector._predictor.model is model and detector.class_names == names
    swapped = detector(astronaut)
    assert len(swapped) and set(swapped.class_names) <= set(names)
    with pytest.raises(DeticError, match="one name per row"):
        detector.set_vocabulary(np.load(vocab)[rows], names=["only one"])


def test_class_thresholds_leave_other_classes_identical(r18, plain_detector, astronaut):
    _, config, weights, vocab, _ = r18
    kwargs = {"config": config, "weights": weights, "vocab": str(vocab), "device": "cpu", "overrides": SMALL}
    base = plain_detector(astronaut)  # Detector(threshold=0.5, **kwargs)
    counts = np.bincount(base.class_ids)
    lowered, raised = f"class_{int(counts.argmax())}", f"class_{int(np.argsort(counts)[-2])}"
    low = Detector(threshold=0.3, **kwargs)(astronaut)
    mixed = Detector(threshold=0.5, class_thresholds=f"{lowered}=0.3,{raised}=0.9", **kwargs)(astronaut)

    def of(result: Result, keep) -> list:
        return [(b.tolist(), float(s)) for b, s, n in zip(result.boxes, result.scores, result.class_names)
                if keep(n)]

    others = lambda n: n not in (lowered, raised)  # noqa: E731
    assert of(mixed, others) == of(base, others) and of(base, others)
    assert of(mixed, lambda n: n == lowered) == of(low, lambda n: n == lowered)
    assert len(of(mixed, lambda n: n == lowered)) >= len(of(base, lambda n: n == lowered))
    assert (mixed.scores[np.array(mixed.class_names) == lowered] > 0.3).all()
    assert of(mixed, lambda n: n == raised) == [d for d in of(base, lambda n: n == raised) if d[1] > 0.9]
    with pytest.raises(DeticError, match="not in the vocabulary"):
        Detector(class_thresholds={"zebra crossing": 0.2}, **kwargs)


def test_embeddings_and_rescore_reproduce_the_scores(small_detector, plain_detector, r18, astronaut):
    _, config, weights, vocab, names = r18
    result = small_detector(astronaut)
    plain = plain_detector(astronaut)
    np.testing.assert_array_equal(result.boxes, plain.boxes)
    np.testing.assert_array_equal(result.scores, plain.scores)
    assert result.embeddings.shape == (len(result), 512) and result.stage_embeddings.shape == (len(result), 3, 512)
    np.testing.assert_allclose(np.linalg.norm(result.stage_embeddings, axis=2), 1.0, rtol=1e-5)
    assert len(result.to_dict()["instances"][0]["embedding"]) == 512
    table = np.load(vocab)
    again = result.rescore(table, names)
    np.testing.assert_array_equal(again.class_ids, result.class_ids)
    np.testing.assert_allclose(again.scores, result.scores, rtol=1e-5, atol=1e-6)
    rows = sorted(set(result.class_ids.tolist()))
    subset = small_detector.rescore(result, table[rows], names=[names[r] for r in rows])
    np.testing.assert_allclose(subset.class_scores(table[rows]).max(axis=1), subset.scores, rtol=1e-6)
    assert (subset.scores >= result.scores - 1e-6).all() and subset.class_names == result.class_names
    assert len(result.rescore(table, names, threshold=0.9)) == int((result.scores > 0.9).sum())


def test_detr_refuses_embeddings_in_one_line(run_cli, tmp_path):
    from detic_cli.zoo.resolve import config_path

    code, out, err = run_cli("detect", str(SHARED / "parity/images/astronaut.jpg"), "--config",
                             config_path("BoxSup-DeformDETR_L_R50_4x.yaml"), "--weights", tmp_path / "none.pth",
                             "--embeddings", "--device", "cpu")
    assert code == 1 and "no zero-shot classifier" in err and "Traceback" not in err


def test_import_is_cheap():
    code = "import json, sys, detic_cli; print(json.dumps(sorted(sys.modules))); print(detic_cli.__version__)"
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    modules, version = done.stdout.splitlines()
    loaded = set(json.loads(modules))
    assert "detic_cli" in loaded
    assert not {"torch", "numpy", "cv2"} & loaded, sorted({"torch", "numpy", "cv2"} & loaded)
    import detic_cli

    assert version == detic_cli.__version__
