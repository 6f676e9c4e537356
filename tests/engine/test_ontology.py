"""Ontology: prompts -> classes from a string, a YAML or JSON file; per-class NMS merging of prompts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detic_cli.engine.ontology import Ontology, parse_ontology
from detic_cli.engine.result import Result
from detic_cli.errors import DeticError


def _result(boxes, scores, class_ids, vocabulary) -> Result:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    masks = np.zeros((len(boxes), 40, 40), bool)
    for m, (x1, y1, x2, y2) in zip(masks, boxes.astype(int)):
        m[y1:y2, x1:x2] = True
    return Result(boxes=boxes, scores=np.asarray(scores, np.float32), class_ids=np.asarray(class_ids, np.int64),
                  class_names=[vocabulary[c] for c in class_ids], masks=masks, image_size=(40, 40), source="x.jpg",
                  frame_index=None, vocabulary=list(vocabulary))


def test_string_yaml_and_json_forms(tmp_path):
    onto = parse_ontology("milk bottle=bottle, bottle cap = cap,glass bottle=bottle,person")
    assert onto.prompts == ("milk bottle", "bottle cap", "glass bottle", "person")
    assert onto.classes == ("bottle", "cap", "person") and onto.prompt_class == (0, 1, 0, 2)
    (tmp_path / "o.yaml").write_text("milk bottle: bottle\nbottle cap: cap\nglass bottle: bottle\n")
    (tmp_path / "o.json").write_text(json.dumps({"bottle": ["milk bottle", "glass bottle"], "cap": ["bottle cap"]}))
    assert parse_ontology(str(tmp_path / "o.yaml")).classes == ("bottle", "cap")
    from_json = parse_ontology(str(tmp_path / "o.json"))
    assert from_json.prompts == ("milk bottle", "glass bottle", "bottle cap") and from_json.prompt_class == (0, 0, 1)
    assert parse_ontology({"a": "x", "b": "x"}).classes == ("x",) and parse_ontology(None) is None


@pytest.mark.parametrize("spec, message", [
    ("a=x,a=y", "the prompt 'a' is given twice"),
    ("=x", "expected PROMPT=CLASS"),
    (",", "no prompt given"),
    ("missing.yaml", "file not found"),
])
def test_bad_ontologies_are_one_line(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DeticError, match=message):
        parse_ontology(spec)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(DeticError, match="expected a mapping"):
        parse_ontology(str(tmp_path / "bad.json"))


def test_prompts_of_one_class_are_merged_by_nms_and_distractors_dropped():
    onto = parse_ontology("milk bottle=bottle,glass bottle=bottle,cap=cap")
    over = onto.over(["milk bottle", "glass bottle", "cap", "table"])  # "table": a distractor prompt
    assert over.prompt_class == (0, 0, 1, -1)
    result = _result([[0, 0, 20, 20], [1, 1, 20, 21], [0, 0, 20, 20], [5, 5, 30, 30], [22, 22, 38, 38]],
                     [0.9, 0.8, 0.7, 0.95, 0.6], [0, 1, 2, 3, 1], ["milk bottle", "glass bottle", "cap", "table"])
    merged = over.apply(result, iou=0.5)
    # the glass bottle box overlaps the better milk bottle box: merged; the cap (another class) stays;
    # the far glass bottle stays; the table is not a class
    assert merged.class_names == ["bottle", "cap", "bottle"] and merged.vocabulary == ["bottle", "cap"]
    assert merged.class_ids.tolist() == [0, 1, 0] and np.allclose(merged.scores, [0.9, 0.7, 0.6])
    assert merged.masks.shape == (3, 40, 40) and merged.masks[2, 30, 30]
    assert len(over.apply(result.select(np.zeros(0, np.int64)))) == 0
    with pytest.raises(DeticError, match="'cap' not in the vocabulary"):
        onto.over(["milk bottle", "glass bottle"])


def test_identity_keeps_every_detection():
    result = _result([[0, 0, 20, 20], [1, 1, 20, 21]], [0.9, 0.8], [0, 1], ["a", "b"])
    out = Ontology.identity(["a", "b"]).apply(result)
    assert out.class_names == ["a", "b"] and np.array_equal(out.boxes, result.boxes)
