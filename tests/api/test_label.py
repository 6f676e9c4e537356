"""`detic_cli.label`: the Python face of `detic label` (a stand-in detector; the CLI tests run the real one)."""

from __future__ import annotations

import json

import detic_cli
from tests.engine.test_label_job import ONTOLOGY, _pictures, predictor  # noqa: F401 (the fixture)


def test_label_writes_the_dataset_and_resumes(predictor, tmp_path):  # noqa: F811
    pics = _pictures(tmp_path / "pics")
    first = detic_cli.label(str(pics), out=tmp_path / "ds", ontology=ONTOLOGY, max_images=3, format="both",
                            split="train=1,val=1", seed=7, masks="rle")
    assert first.summary is None and (first.done, first.total) == (3, 4)
    report = detic_cli.label([pics], out=tmp_path / "ds", ontology=ONTOLOGY, format="both", split="train=1,val=1",
                             seed=7, masks="rle")
    assert report.labelled == 1 and report.summary.images == 4 and sum(report.summary.per_split.values()) == 4
    images = []
    for split in report.summary.per_split:
        coco = json.loads((tmp_path / "ds" / "annotations" / f"instances_{split}.json").read_text())
        images += [i["file_name"] for i in coco["images"]]
        assert all(isinstance(a["segmentation"]["counts"], str) for a in coco["annotations"])
    assert sorted(images) == ["p0.png", "p1.png", "p2.png", "p3.png"] and "label" in detic_cli.__all__
