"""`detic label`'s job with a stand-in detector: resume, settings guard, filters, videos, bad files, ranks."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

import detic_cli.engine.label as label_module
from detic_cli.engine.class_thresholds import ClassThresholds
from detic_cli.engine.dist import DistInfo
from detic_cli.engine.label import LabelOptions, label, label_status
from detic_cli.engine.label_job import LabelFilters, LabelJob, expand_label_sources, plan_items
from detic_cli.engine.label_store import LabelStore
from detic_cli.engine.ontology import Ontology
from detic_cli.errors import DeticError
from detic_cli.structures import Boxes, Instances

PROMPTS = ["milk bottle", "glass bottle", "cap"]
ONTOLOGY = "milk bottle=bottle,glass bottle=bottle,cap=cap"


class PromptPredictor:
    """Per non-black 48x64 picture: a milk bottle (0.9) and a glass bottle (0.8) on one spot, a cap scored by the
    picture's brightness, and a tiny cap (0.95, 16 pixels^2); nothing on a black picture. Counts its pictures."""

    class_names = PROMPTS

    def __init__(self) -> None:
        self.seen = 0

    def prepare(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return images

    def predict(self, inputs: list[np.ndarray]) -> list[Instances]:
        out = []
        for img in inputs:
            self.seen += 1
            bright = float(img.mean()) / 255.0
            rows = [] if bright == 0 else [([2, 2, 30, 30], 0.9, 0), ([3, 3, 30, 31], 0.8, 1),
                                           ([40, 10, 50, 20], bright, 2), ([0, 0, 4, 4], 0.95, 2)]
            boxes = torch.tensor([r[0] for r in rows], dtype=torch.float32).reshape(-1, 4)
            masks = torch.zeros(len(rows), *img.shape[:2], dtype=torch.bool)
            for m, (x1, y1, x2, y2) in zip(masks, boxes.int().tolist()):
                m[y1:y2, x1:x2] = True
            out.append(Instances(img.shape[:2], pred_boxes=Boxes(boxes), scores=torch.tensor([r[1] for r in rows]),
                                 pred_classes=torch.tensor([r[2] for r in rows], dtype=torch.int64), pred_masks=masks))
        return out


@pytest.fixture
def predictor(monkeypatch):
    fake = PromptPredictor()

    def load(onto, vocab, **kwargs):
        return fake, onto.over(fake.class_names) if onto else Ontology.identity(fake.class_names)

    monkeypatch.setattr(label_module, "_predictor", load)
    return fake


def _pictures(folder, values=(200, 120, 0, 60)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, v in enumerate(values):
        cv2.imwrite(str(folder / f"p{i}.png"), np.full((48, 64, 3), v, np.uint8))
    return folder


def _video(path, frames: int = 5):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 30 + 40 * i, np.uint8))
    writer.release()
    return path


def test_interrupted_run_resumes_and_other_settings_are_refused(predictor, tmp_path):
    pics, out = _pictures(tmp_path / "pics"), tmp_path / "ds"
    first = label([str(pics)], out=out, ontology=ONTOLOGY, max_images=2)
    assert (first.done, first.total, first.summary) == (2, 4, None) and predictor.seen == 2
    assert not (out / "annotations").exists() and label_status(out)[0].done == 2 and not label_status(out)[1]
    second = label([str(pics)], out=out, ontology=ONTOLOGY)
    assert predictor.seen == 4 and (second.skipped, second.labelled) == (2, 2)
    summary = second.summary
    # the two bottle prompts merge into one bottle; caps: the tiny ones and the one of the 200 picture (0.78)
    assert summary.images == 4 and summary.per_class == {"bottle": 3, "cap": 4} and summary.empty == 1
    coco = json.loads((out / "annotations" / "instances_train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["bottle", "cap"]
    assert label_status(out) == (label_status(out)[0], True) and label_status(out)[0].done == 4
    with pytest.raises(DeticError, match=r"threshold differ\); rerun with the same options, or add --fresh"):
        label([str(pics)], out=out, ontology=ONTOLOGY, options=LabelOptions(threshold=0.3))
    third = label([str(pics)], out=out, ontology=ONTOLOGY, options=LabelOptions(threshold=0.3, format="yolo"),
                  fresh=True)
    assert predictor.seen == 8 and third.summary.per_class == {"bottle": 3, "cap": 5}
    assert (out / "data.yaml").is_file() and not (out / "annotations" / "instances_train.json").exists()


def test_filters_and_dropping_empty_pictures(predictor, tmp_path):
    pics = _pictures(tmp_path / "pics")
    options = LabelOptions(threshold=0.1, class_threshold="cap=0.5", filters=LabelFilters(min_box_area=20),
                           drop_empty=True)
    report = label([str(pics)], out=tmp_path / "a", vocab="milk bottle,glass bottle,cap", options=options)
    # no ontology: each prompt its own class, so the two bottles are not merged; tiny caps are under 20 px^2
    assert report.summary.per_class == {"milk bottle": 3, "glass bottle": 3, "cap": 1}
    assert report.summary.images == 3 and report.summary.dropped == 1
    top = label([str(pics)], out=tmp_path / "b", ontology=ONTOLOGY,
                options=LabelOptions(filters=LabelFilters(max_detections=1)))
    assert top.summary.per_class == {"bottle": 0, "cap": 3}  # the 0.95 tiny cap beats the 0.9 bottle
    with pytest.raises(DeticError, match="--class-threshold: 'bottle'"):
        label([str(pics)], out=tmp_path / "c", vocab="milk bottle,glass bottle,cap",
              options=LabelOptions(class_threshold="bottle=0.2"))
    again = label([str(pics)], out=tmp_path / "c", vocab="milk bottle,glass bottle,cap",
                  options=LabelOptions(threshold=0.6))
    assert again.summary.images == 4  # the failed run left settings but no result, so nothing is refused


def test_video_frames_and_bad_files(predictor, tmp_path):
    video = _video(tmp_path / "clip.avi")
    (tmp_path / "bad.jpg").write_bytes(b"not a picture")
    good = _pictures(tmp_path / "pics", (200,)) / "p0.png"
    words = [str(video), str(tmp_path / "bad.jpg"), str(good)]
    with pytest.raises(DeticError, match="bad.jpg"):
        label(words, out=tmp_path / "ds", ontology=ONTOLOGY, options=LabelOptions(every=2))
    report = label(words, out=tmp_path / "ds", ontology=ONTOLOGY, options=LabelOptions(every=2, frame_format="png"),
                   skip_bad=True)
    assert (report.total, report.summary.images, report.summary.bad) == (5, 4, 1)
    names = sorted(p.name for p in (tmp_path / "ds" / "images" / "train").iterdir())
    assert names == ["clip_000000.png", "clip_000002.png", "clip_000004.png", "p0.png"]
    frame = cv2.imread(str(tmp_path / "ds" / "images" / "train" / "clip_000004.png"))
    assert frame.shape == (48, 64, 3) and abs(float(frame.mean()) - 190) < 8
    assert label_status(tmp_path / "ds")[0].bad == 1


def test_ranks_share_the_sorted_inputs(tmp_path):
    items = plan_items(expand_label_sources([str(_pictures(tmp_path / "pics", range(10, 60, 10)))]))
    store = LabelStore(tmp_path / "ds")
    store.shards.mkdir(parents=True)
    seen = []
    for rank in (0, 1):
        job = LabelJob(PromptPredictor(), items, store, Ontology.identity(PROMPTS), ClassThresholds(0.5),
                       dist=DistInfo(rank, 2))
        job.run(lambda item, result, rank=rank: seen.append((rank, item.key)))
    assert [k for r, k in seen if r == 0] == [it.key for it in items[0::2]]
    assert sorted(k for _, k in seen) == sorted(it.key for it in items) and all(store.done(it.key) for it in items)


def test_lists_of_paths_and_refused_inputs(tmp_path):
    pics = _pictures(tmp_path / "pics", (1, 2))
    (tmp_path / "list.txt").write_text("# my pictures\npics/p1.png\n\n" + str(pics / "p0.png") + "\n")
    sources = expand_label_sources([str(tmp_path / "list.txt")])
    assert [s.location for s in sources] == [str(tmp_path / "pics/p1.png"), str(pics / "p0.png")]
    assert len(plan_items(sources + sources)) == 2  # an input named twice is labelled once
    with pytest.raises(DeticError, match="not a webcam"):
        expand_label_sources(["0"])
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(DeticError, match="names no picture"):
        expand_label_sources([str(tmp_path / "empty.txt")])
    with pytest.raises(DeticError, match="--every 0"):
        plan_items(sources, every=0)
    with pytest.raises(DeticError, match="give --vocab"):
        label([str(pics)], out=tmp_path / "ds")


def test_tracked_videos_get_track_ids_and_go_whole_to_one_rank(predictor, tmp_path):
    from detic_cli.engine.tracking import TrackSettings

    videos = [str(_video(tmp_path / f"clip{i}.avi", frames=6)) for i in range(2)]
    track = TrackSettings(min_frames=1, thresh=0.5)
    first = label(videos, out=tmp_path / "ds", ontology=ONTOLOGY, options=LabelOptions(every=2), track=track,
                  max_images=4)
    assert (first.done, first.total) == (4, 6)
    again = label(videos, out=tmp_path / "ds", ontology=ONTOLOGY, options=LabelOptions(every=2), track=track)
    assert again.labelled == 3  # clip1 had one frame of three done: tracked again from its first frame
    coco = json.loads((tmp_path / "ds" / "annotations" / "instances_train.json").read_text())
    by_image: dict[int, list] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    bottles = [[a["track_id"] for a in anns if a["category_id"] == 1] for _, anns in sorted(by_image.items())]
    # ByteTrack confirms a track on its second frame: -1 first, then one id along each video
    assert bottles[0] == bottles[3] == [-1] and bottles[1] == bottles[2] == bottles[4] == bottles[5] == [0]
    items = plan_items(expand_label_sources(videos), every=2)
    jobs = [LabelJob(PromptPredictor(), items, LabelStore(tmp_path / "x"), Ontology.identity(PROMPTS),
                     ClassThresholds(0.5), dist=DistInfo(rank, 2), track=track) for rank in (0, 1)]
    assert [{it.source.location for it in job.pending()} for job in jobs] == [{videos[0]}, {videos[1]}]
