"""`detic detect` as a user runs it: pictures, folders, globs, videos, bad input."""

from __future__ import annotations

import json
import shutil
import sys

import cv2
import numpy as np
import pytest

R18 = "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml"


@pytest.fixture
def model_args(shared_dir, parity_checkpoint):
    return ["--config", shared_dir / "detic-reference/configs" / R18, "--weights", parity_checkpoint(R18),
            "--vocab", shared_dir / "detic-metadata/lvis_v1_clip_a+cname.npy", "--device", "cpu",
            "INPUT.MIN_SIZE_TEST=160", "INPUT.MAX_SIZE_TEST=256"]


@pytest.fixture
def pictures(shared_dir, tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    shutil.copy(shared_dir / "parity/images/astronaut.jpg", folder / "a.jpg")
    shutil.copy(shared_dir / "parity/images/chelsea.jpg", folder / "b.jpg")
    return folder


def _write_video(path, frames: int = 4, size=(96, 64)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, size)
    rng = np.random.default_rng(0)
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), 40 * i, np.uint8)
        cv2.rectangle(frame, (10 + i, 10), (50 + i, 40), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
        writer.write(frame)
    writer.release()


def test_folder_writes_pictures_and_json(run_cli, model_args, pictures, tmp_path):
    code, _, err = run_cli("detect", pictures, "--output", tmp_path / "vis", "--json", tmp_path / "d.json",
                           "--batch-size", "2", *model_args)
    assert code == 0, err
    records = json.loads((tmp_path / "d.json").read_text())
    assert [r["file_name"] for r in records] == [str(pictures / "a.jpg"), str(pictures / "b.jpg")]
    assert (records[1]["height"], records[1]["width"]) == (300, 451)
    inst = records[0]["instances"]
    assert inst and all(i["score"] >= 0.5 for i in inst)
    assert all(0 <= i["box_xyxy"][0] <= i["box_xyxy"][2] <= 512 for i in inst)
    assert inst[0]["mask_rle"]["size"] == [512, 512] and isinstance(inst[0]["class_name"], str)
    drawn = cv2.imread(str(tmp_path / "vis" / "a.jpg"))
    assert drawn.shape == (512, 512, 3)
    assert not np.array_equal(drawn, cv2.imread(str(pictures / "a.jpg")))


def test_single_picture_to_file_and_glob(run_cli, model_args, pictures, tmp_path):
    out = tmp_path / "one.png"
    code, _, err = run_cli("detect", str(pictures / "*.jpg"), "--json", tmp_path / "g.json", *model_args)
    assert code == 0, err
    assert len(json.loads((tmp_path / "g.json").read_text())) == 2
    code, _, err = run_cli("detect", pictures / "b.jpg", "--output", out, *model_args)
    assert code == 0, err
    assert cv2.imread(str(out)).shape == (300, 451, 3)


def test_video_frame_by_frame(run_cli, model_args, tmp_path):
    video = tmp_path / "clip.mp4"
    _write_video(video)
    code, _, err = run_cli("detect", video, "--output", tmp_path / "vis", "--json", tmp_path / "v.json",
                           "--threshold", "0.3", *model_args)
    assert code == 0, err
    records = json.loads((tmp_path / "v.json").read_text())
    assert [r["frame_index"] for r in records] == [0, 1, 2, 3]
    cap = cv2.VideoCapture(str(tmp_path / "vis" / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    cap.release()


def test_pred_all_class_keeps_more_labels(run_cli, model_args, pictures, tmp_path):
    run_cli("detect", pictures / "a.jpg", "--json", tmp_path / "one.json", "--threshold", "0.3", *model_args)
    run_cli("detect", pictures / "a.jpg", "--json", tmp_path / "all.json", "--threshold", "0.3",
            "--pred-all-class", *model_args)
    one = json.loads((tmp_path / "one.json").read_text())[0]["instances"]
    every = json.loads((tmp_path / "all.json").read_text())[0]["instances"]
    assert len(every) > len(one)


def test_missing_input_is_one_clear_line(run_cli, model_args, tmp_path):
    code, out, err = run_cli("detect", tmp_path / "nope.jpg", *model_args)
    assert code == 1
    assert err.strip().count("\n") == 0 and "nope.jpg: no such file" in err and "Traceback" not in err


def test_truncated_image_keeps_earlier_results(run_cli, model_args, pictures, tmp_path):
    data = (pictures / "b.jpg").read_bytes()
    (pictures / "b.jpg").write_bytes(data[: len(data) // 3])
    code, _, err = run_cli("detect", pictures, "--json", tmp_path / "d.json", *model_args)
    assert code == 1 and "b.jpg: cannot read image" in err and "Traceback" not in err
    assert "(the 1 frame(s) before it are written)" in err.splitlines()[-1]
    records = json.loads((tmp_path / "d.json").read_text())
    assert [r["file_name"] for r in records] == [str(pictures / "a.jpg")]
    assert not list(tmp_path.glob(".d.json*"))


def test_corrupt_video_frame_is_reported(run_cli, model_args, tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), 30 * i, np.uint8))
    writer.release()
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    code, _, err = run_cli("detect", video, "--json", tmp_path / "v.json", *model_args)
    if code == 0:  # the container lost its tail cleanly: every decoded frame must be in the JSON
        assert json.loads((tmp_path / "v.json").read_text())
    else:
        assert code == 1 and "clip.avi" in err and "Traceback" not in err


def test_wrong_shaped_vocabulary(run_cli, model_args, pictures, tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros(512, np.float32))
    args = [str(a) for a in model_args]
    args[args.index("--vocab") + 1] = str(bad)
    code, _, err = run_cli("detect", pictures / "a.jpg", *args)
    assert code == 1
    assert "bad.npy" in err and "2-D" in err


def test_vocabulary_dimension_mismatch(run_cli, model_args, pictures, tmp_path):
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.ones((3, 256), np.float32))
    args = [str(a) for a in model_args]
    args[args.index("--vocab") + 1] = str(wrong)
    code, _, err = run_cli("detect", pictures / "a.jpg", *args)
    assert code == 1 and "wrong.npy" in err and "512" in err


def test_amp_runs_the_backbone_in_half_precision(run_cli, model_args, pictures, tmp_path, monkeypatch):
    """--amp bf16 reaches the backbone (Detic's FP16 scope: backbone convolutions in half precision, heads
    and boxes in float32); a bad word is one line."""
    import torch

    from detic_cli.modeling.backbone.timm_resnet import TimmResNet

    seen: list[torch.dtype] = []
    forward = TimmResNet.forward
    monkeypatch.setattr(TimmResNet, "forward",
                        lambda self, x: seen.append(self.base.conv1(x).dtype) or forward(self, x))
    code, _, err = run_cli("detect", pictures / "a.jpg", "--json", tmp_path / "d.json", "--amp", "bf16", *model_args)
    assert code == 0, err
    assert seen == [torch.bfloat16]
    instances = json.loads((tmp_path / "d.json").read_text())[0]["instances"]
    assert instances and all(isinstance(v, float) for i in instances for v in i["box_xyxy"])
    code, _, err = run_cli("detect", pictures / "a.jpg", "--amp", "fp8", *model_args)
    assert code == 1 and err.strip() == "error: --amp fp8: expected one of off, fp16, bf16"


def test_input_bucket_pads_the_network_input(run_cli, model_args, pictures, tmp_path, monkeypatch):
    """--input-bucket 128 pads the 160 x 160 network input of the astronaut to 256 x 256 (static shapes); the
    default keeps the original's padding to the backbone's divisibility; a negative bucket is one line."""
    from detic_cli.modeling.backbone.timm_resnet import TimmResNet

    seen: list[tuple[int, int]] = []
    forward = TimmResNet.forward
    monkeypatch.setattr(TimmResNet, "forward", lambda self, x: seen.append(tuple(x.shape[-2:])) or forward(self, x))
    for extra in ([], ["--input-bucket", "128"]):
        code, _, err = run_cli("detect", pictures / "a.jpg", "--json", tmp_path / "d.json", *extra, *model_args)
        assert code == 0, err
    assert seen == [(160, 160), (256, 256)]
    code, _, err = run_cli("detect", pictures / "a.jpg", "--input-bucket", "-1", *model_args)
    assert code == 2 and "--input-bucket" in err


def test_outputs_are_checked_before_the_model_loads(run_cli, pictures, tmp_path):
    """Nothing is overwritten that was an input, and unusable output paths fail at once, in one line."""
    before = {p.name: p.read_bytes() for p in pictures.iterdir()}
    (tmp_path / "plain").write_text("a file")
    cases = [
        (["--output", pictures], "would overwrite the input"),
        (["--json", pictures / "a.jpg"], "is one of the inputs"),
        (["--output", tmp_path / "multi.png"], "give a folder name"),
        (["--json", pictures], "is a folder"),
        (["--json", tmp_path / "plain" / "d.json"], "is a file, not a folder"),
        (["--output", tmp_path / "plain" / "vis"], "is a file, not a folder"),
    ]
    for extra, message in cases:
        # no --config/--weights: the check must come before the (missing) model is even looked up
        code, _, err = run_cli("detect", pictures, *extra, "--model", "no_such_model")
        assert code == 1 and message in err and err.strip().count("\n") == 0, (extra, err)
    assert {p.name: p.read_bytes() for p in pictures.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pics", "plain"]


def test_vocab_and_vocab_file_together_are_refused(run_cli, model_args, pictures, tmp_path):
    (tmp_path / "names.txt").write_text("cat\ndog\n")
    code, _, err = run_cli("detect", pictures / "a.jpg", *model_args, "--vocab-file", tmp_path / "names.txt")
    assert code == 1 and "give only one of them" in err


def test_error_lines_keep_square_brackets(run_cli, tmp_path):
    """Messages are printed verbatim: a path with [brackets] is not taken for console markup."""
    code, _, err = run_cli("detect", tmp_path / "[run]" / "x.jpg")
    assert code == 1 and "[run]" in err and err.strip().count("\n") == 0


def test_skip_bad_goes_on_past_unreadable_inputs(run_cli, model_args, pictures, tmp_path):
    (pictures / "b.jpg").write_bytes((pictures / "b.jpg").read_bytes()[:300])  # truncated, between a and c
    (pictures / "c.png").write_bytes(cv2.imencode(".png", np.full((64, 80, 3), 120, np.uint8))[1].tobytes())
    (pictures / "d.mp4").write_bytes(b"not a video")
    code, _, err = run_cli("detect", pictures, "--json", tmp_path / "d.json", "--skip-bad", *model_args)
    assert code == 0, err
    records = json.loads((tmp_path / "d.json").read_text())
    assert [r["file_name"] for r in records] == [str(pictures / "a.jpg"), str(pictures / "c.png")]
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and "b.jpg: cannot read image" in warnings[1] and "d.mp4" in warnings[0]
    assert "2 frame(s) from 4 input(s); 2 unreadable input(s) skipped" in err


def test_track_gives_ids_in_records_and_the_drawn_video(run_cli, model_args, shared_dir, tmp_path):
    picture = cv2.resize(cv2.imread(str(shared_dir / "parity/images/astronaut.jpg")), (160, 160))
    video = tmp_path / "pan.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (128, 128))
    for i in range(2):  # the picture panning 2 px a frame
        writer.write(np.ascontiguousarray(picture[8:136, 2 * i:2 * i + 128]))
    writer.release()
    code, _, err = run_cli("detect", video, "--track", "--track-buffer", "10", "--jsonl", tmp_path / "t.jsonl",
                           "--output", tmp_path / "vis.mp4", "--threshold", "0.75", *model_args,
                           "INPUT.MIN_SIZE_TEST=160")
    assert code == 0, err
    records = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    ids = [[i["track_id"] for i in r["instances"]] for r in records]
    assert [r["frame_index"] for r in records] == [0, 1] and ids[0] and set(ids[0]) == {-1}, ids
    assert any(t >= 0 for t in ids[1]), ids  # tracks started on frame 0 continued on frame 1
    cap = cv2.VideoCapture(str(tmp_path / "vis.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
    cap.release()


def test_track_refuses_pictures_only_in_one_line(run_cli, model_args, pictures, tmp_path):
    code, _, err = run_cli("detect", pictures, "--track", "--json", tmp_path / "d.json", *model_args)
    assert code != 0 and "--track follows objects across video frames" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d.json").exists()


def test_track_without_the_trackers_package_names_the_extra(run_cli, model_args, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "trackers", None)
    _write_video(tmp_path / "clip.mp4", frames=1)
    code, _, err = run_cli("detect", tmp_path / "clip.mp4", "--track", *model_args)
    assert code != 0 and 'pip install "detic[track]"' in err and len(err.strip().splitlines()) == 1
