"""EvaluateJob and engine.evaluate.run_job with a fake predictor: shards, resume, rank split, merge, metrics,
fingerprint, progress and the report."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from detic_cli.data.catalog import resolve_dataset
from detic_cli.engine.dist import DistInfo
from detic_cli.engine.evaluate import run_job
from detic_cli.engine.evaluate_job import (
    EvaluateJob,
    iou_types,
    load_ground_truth,
    write_fingerprint,
)
from detic_cli.errors import DeticError
from detic_cli.structures import Instances
from detic_cli.structures.boxes import Boxes


@pytest.fixture
def dataset(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    gt = {"images": [], "annotations": [], "categories": [{"id": 7, "name": "b"}, {"id": 3, "name": "a"}]}
    for i in range(5):
        cv2.imwrite(str(images / f"{i}.png"), np.full((40, 60, 3), 30 * i, np.uint8))
        gt["images"].append({"id": 10 + i, "file_name": f"{i}.png", "height": 40, "width": 60})
        gt["annotations"].append({"id": i + 1, "image_id": 10 + i, "category_id": 3 if i % 2 else 7,
                                  "bbox": [5.0, 5.0, 20.0, 10.0], "area": 200.0, "iscrowd": 0})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    return resolve_dataset(f"coco:{tmp_path / 'gt.json'}:{images}")


def fake_predict(calls: list[int]):
    def predict(frames: list[np.ndarray]) -> list[Instances]:
        calls.append(len(frames))
        out = []
        for frame in frames:
            level = int(frame[0, 0, 0]) // 30  # image index
            box = torch.tensor([[5.0, 5.0, 25.0, 15.0]])
            out.append(Instances(frame.shape[:2], pred_boxes=Boxes(box), scores=torch.tensor([0.9]),
                                 pred_classes=torch.tensor([0 if level % 2 else 1])))
        return out

    return predict


def test_runs_resumes_and_scores(dataset, tmp_path):
    gt = load_ground_truth(dataset)
    calls: list[int] = []
    out = tmp_path / "out"
    job = EvaluateJob(fake_predict(calls), dataset, gt, out, batch_size=2, max_images=3)
    job.run()
    assert calls == [2, 1] and job.missing() == 2
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["10.json", "11.json", "12.json"]
    again = EvaluateJob(fake_predict(calls), dataset, gt, out, batch_size=2)
    assert [img["id"] for img in again.pending()] == [13, 14]
    again.run()
    assert calls == [2, 1, 2] and again.missing() == 0
    results = again.merge()
    assert [r["image_id"] for r in results] == [10, 11, 12, 13, 14]
    # class index 0 -> smallest category id (3), 1 -> 7
    assert [r["category_id"] for r in results] == [7, 3, 7, 3, 7]
    assert results[0]["bbox"] == [5.0, 5.0, 20.0, 10.0]
    metrics = again.score(results, ["bbox"])
    assert metrics["bbox/AP"] == pytest.approx(100.0)
    assert json.loads((out / "metrics.json").read_text())["bbox/AP"] == pytest.approx(100.0)
    assert len(json.loads((out / "results.json").read_text())) == 5


def test_ranks_split_images(dataset, tmp_path):
    gt = load_ground_truth(dataset)
    jobs = [EvaluateJob(fake_predict([]), dataset, gt, tmp_path / "o", dist=DistInfo(r, 2, r)) for r in (0, 1)]
    assert [[i["id"] for i in j.pending()] for j in jobs] == [[10, 12, 14], [11, 13]]
    jobs[1].run()
    assert jobs[0].missing() == 3


def test_fingerprint_guards_the_folder(tmp_path):
    write_fingerprint(tmp_path, {"weights": "a"}, fresh=False)
    write_fingerprint(tmp_path, {"weights": "a"}, fresh=False)
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "1.json").write_text("[]")
    with pytest.raises(DeticError, match="another run"):
        write_fingerprint(tmp_path, {"weights": "b"}, fresh=False)
    write_fingerprint(tmp_path, {"weights": "b"}, fresh=True)
    assert not (tmp_path / "shards" / "1.json").exists()


def test_segm_only_with_masks_everywhere(dataset):
    gt = load_ground_truth(dataset)
    assert iou_types(dataset, gt, True) == ["bbox"]  # no segmentation in the annotations
    for ann in gt["annotations"]:
        ann["segmentation"] = [[5, 5, 25, 5, 25, 15, 5, 15]]
    assert iou_types(dataset, gt, True) == ["bbox", "segm"]
    assert iou_types(dataset, gt, False) == ["bbox"]


class Recorder:
    """A Progress that writes down what it hears."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def start(self, label: str, total: int | None, completed: int = 0) -> None:
        self.events.append(("start", label, total))

    def advance(self, amount: int) -> None:
        self.events.append(("advance", amount))

    def finish(self) -> None:
        self.events.append(("finish",))

    def note(self, message: str) -> None:
        self.events.append(("note", message))


def test_run_job_reports_progress_and_scores_once_complete(dataset, tmp_path):
    gt = load_ground_truth(dataset)
    first, progress = EvaluateJob(fake_predict([]), dataset, gt, tmp_path, max_images=2), Recorder()
    report = run_job(first, ["bbox"], progress)
    assert progress.events == [("start", "eval", 2), ("advance", 1), ("advance", 1), ("finish",)]
    assert (report.images, report.skipped, report.left, report.metrics) == (5, 0, 3, {})
    assert report.main and report.iou_types == ("bbox",) and not (tmp_path / "metrics.json").exists()
    progress = Recorder()
    report = run_job(EvaluateJob(fake_predict([]), dataset, gt, tmp_path), ["bbox"], progress)
    assert progress.events[0] == ("note", f"eval: 2 image(s) already done in {tmp_path}, skipped")
    assert progress.events[1] == ("start", "eval", 3) and len(progress.events) == 6
    assert (report.skipped, report.left, report.metrics["bbox/AP"]) == (2, 0, pytest.approx(100.0))
    assert json.loads((tmp_path / "metrics.json").read_text())["bbox/AP"] == pytest.approx(100.0)
    progress = Recorder()
    assert run_job(EvaluateJob(fake_predict([]), dataset, gt, tmp_path), ["bbox"], progress).skipped == 5
    assert [e[0] for e in progress.events] == ["note", "finish"]  # nothing left to do: no bar
