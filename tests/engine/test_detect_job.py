"""DetectJob with a stand-in predictor: order, threads, failures and the viewer's stop."""

from __future__ import annotations

import json
import threading

import cv2
import numpy as np
import pytest
import torch

from detic_cli.data.sources import Source
from detic_cli.engine.detect_job import DetectJob, OutputPlan
from detic_cli.errors import DeticError
from detic_cli.structures import Boxes, Instances


class OneBoxPredictor:
    """One detection per frame whose score encodes the frame's mean brightness; records the threads used."""

    class_names = ["thing"]

    def __init__(self) -> None:
        self.prepare_threads: set[int] = set()
        self.predict_threads: set[int] = set()

    def prepare(self, images: list[np.ndarray]) -> list[np.ndarray]:
        self.prepare_threads.add(threading.get_ident())
        return images

    def predict(self, inputs: list[np.ndarray]) -> list[Instances]:
        self.predict_threads.add(threading.get_ident())
        return [Instances(img.shape[:2], pred_boxes=Boxes(torch.tensor([[1.0, 2.0, 20.0, 30.0]])),
                          scores=torch.tensor([float(img.mean()) / 255.0]), pred_classes=torch.tensor([0]))
                for img in inputs]


def _video(path, frames: int = 5):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    return Source("video", str(path))


def test_results_come_in_input_order_with_reading_and_writing_off_the_main_thread(tmp_path):
    source = _video(tmp_path / "clip.avi")
    predictor = OneBoxPredictor()
    written: list[tuple[int, int]] = []
    job = DetectJob(predictor, [source], plan=OutputPlan.make([source], tmp_path / "out"),
                    json_path=tmp_path / "d.json", batch_size=2)
    job.run(on_frame=lambda frame, inst: written.append((frame.index, threading.get_ident())))
    assert [i for i, _ in written] == [0, 1, 2, 3, 4] and job.frames_done == 5
    main = threading.get_ident()
    assert predictor.predict_threads == {main}
    assert main not in predictor.prepare_threads and main not in {t for _, t in written}
    records = json.loads((tmp_path / "d.json").read_text())
    assert [r["frame_index"] for r in records] == [0, 1, 2, 3, 4]
    scores = [r["instances"][0]["score"] for r in records]
    assert scores == sorted(scores) and scores[0] < scores[-1]
    cap = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    cap.release()


@pytest.mark.parametrize("batch_size", [1, 2])
def test_a_bad_input_keeps_every_result_before_it(tmp_path, batch_size):
    good = tmp_path / "a.png"
    cv2.imwrite(str(good), np.full((40, 50, 3), 100, np.uint8))
    bad = tmp_path / "b.png"
    bad.write_bytes(b"not a picture")
    sources = [Source("image", str(good))] * 3 + [Source("image", str(bad)), Source("image", str(good))]
    job = DetectJob(OneBoxPredictor(), sources, plan=OutputPlan(), json_path=tmp_path / "d.json",
                    batch_size=batch_size)
    with pytest.raises(DeticError, match="b.png"):
        job.run()
    # with batches of 2, the third picture sits in an unfinished batch when the fourth fails: it counts too
    assert [r["file_name"] for r in json.loads((tmp_path / "d.json").read_text())] == [str(good)] * 3
    assert job.frames_done == 3


def test_show_gets_each_picture_in_this_thread_and_can_stop_the_job(tmp_path):
    source = _video(tmp_path / "clip.avi")
    shown: list[tuple[tuple[int, ...], bool, int]] = []

    def show(picture: np.ndarray, still: bool) -> bool:
        shown.append((picture.shape, still, threading.get_ident()))
        return len(shown) < 2

    job = DetectJob(OneBoxPredictor(), [source], plan=OutputPlan.make([source], tmp_path / "out"),
                    json_path=tmp_path / "d.json", show=show)
    job.run()
    assert shown == [((48, 64, 3), False, threading.get_ident())] * 2
    assert job.frames_done == 2
    assert [r["frame_index"] for r in json.loads((tmp_path / "d.json").read_text())] == [0, 1]
    cap = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
    cap.release()


def test_count_frames_opens_every_video_and_camera_first(tmp_path, monkeypatch):
    from detic_cli.engine import detect_job

    clip = _video(tmp_path / "clip.avi", frames=5)
    picture = Source("image", str(tmp_path / "a.png"))
    assert detect_job.count_frames([picture, clip], None) == 6
    assert detect_job.count_frames([picture, clip], 3) == 4
    monkeypatch.setattr(detect_job, "video_info", lambda src: (0, 30.0, (64, 48)) if src.kind == "webcam"
                        else (_ for _ in ()).throw(DeticError(f"{src.name}: cannot open video")))
    with pytest.raises(DeticError, match="broken.mp4"):  # checked although a webcam (unknown length) came first
        detect_job.count_frames([Source("webcam", "0"), Source("video", "broken.mp4")], None)
    assert detect_job.count_frames([Source("webcam", "0")], None) is None
    assert detect_job.count_frames([Source("webcam", "0")], 10) == 10


class SureBoxPredictor(OneBoxPredictor):
    """OneBoxPredictor with a score of 0.9 on every frame."""

    def predict(self, inputs: list[np.ndarray]) -> list[Instances]:
        out = super().predict(inputs)
        for inst in out:
            inst.scores = torch.full_like(inst.scores, 0.9)
        return out


def test_track_numbers_each_video_from_zero_and_leaves_pictures_untracked(tmp_path):
    from detic_cli.engine.tracking import TrackSettings

    picture = tmp_path / "p.png"
    cv2.imwrite(str(picture), np.zeros((48, 64, 3), np.uint8))
    sources = [_video(tmp_path / "a.avi", 3), Source("image", str(picture)), _video(tmp_path / "b.avi", 3)]
    job = DetectJob(SureBoxPredictor(), sources, plan=OutputPlan(), json_path=tmp_path / "d.json", batch_size=2,
                    track=TrackSettings())
    job.run()
    records = json.loads((tmp_path / "d.json").read_text())
    ids = [[i.get("track_id") for i in r["instances"]] for r in records]
    assert ids == [[-1], [0], [0], [None], [-1], [0], [0]]
