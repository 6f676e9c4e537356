"""Prompts -> classes for `detic label`: the detector runs on every prompt, each detection takes its prompt's
class, and detections of one class that came from different prompts are merged by that class's NMS.

An ontology is written "milk bottle=bottle,bottle cap=cap" (an entry without "=" is its own class), or as a
YAML/JSON file: a mapping prompt -> class, or class -> [prompts]. Classes keep their order of first appearance
(the dataset's category order); several prompts may share a class.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.ops import batched_nms

from detic_cli.engine.result import Result
from detic_cli.errors import DeticError

__all__ = ["Ontology", "parse_ontology"]


@dataclass(frozen=True)
class Ontology:
    """prompts: the P names the detector scores (its vocabulary, in order); classes: the K dataset classes in
    order; prompt_class: (P,) index into `classes` of each prompt's class, -1 for a prompt that labels nothing
    (a distractor: detected, then dropped)."""

    prompts: tuple[str, ...]
    classes: tuple[str, ...]
    prompt_class: tuple[int, ...]

    @staticmethod
    def identity(names: Sequence[str]) -> Ontology:
        """Each vocabulary name its own class."""
        return Ontology(tuple(names), tuple(names), tuple(range(len(names))))

    @staticmethod
    def from_pairs(pairs: Sequence[tuple[str, str]]) -> Ontology:
        """(prompt, class) pairs; a prompt given twice is an error."""
        classes: list[str] = []
        prompts: list[str] = []
        index: list[int] = []
        for prompt, cls in pairs:
            if prompt in prompts:
                raise DeticError(f"--ontology: the prompt {prompt!r} is given twice")
            if cls not in classes:
                classes.append(cls)
            prompts.append(prompt)
            index.append(classes.index(cls))
        if not prompts:
            raise DeticError("--ontology: no prompt given; write \"prompt=class,prompt=class\" or a YAML/JSON file")
        return Ontology(tuple(prompts), tuple(classes), tuple(index))

    def over(self, vocabulary: Sequence[str]) -> Ontology:
        """This ontology on a detector whose vocabulary is `vocabulary`: every prompt must be one of its names;
        names outside the ontology become distractors."""
        missing = [p for p in self.prompts if p not in set(vocabulary)]
        if missing:
            raise DeticError(f"--ontology: prompt(s) {', '.join(repr(p) for p in missing)} not in the vocabulary "
                             f"({len(vocabulary)} names); leave out --vocab to detect exactly the ontology's prompts")
        of = dict(zip(self.prompts, self.prompt_class))
        return Ontology(tuple(vocabulary), self.classes, tuple(of.get(n, -1) for n in vocabulary))

    def apply(self, result: Result, iou: float = 0.5) -> Result:
        """`result` (class_ids index `prompts`) relabelled with the classes: distractors dropped, then per
        class NMS at `iou` over detections from different prompts; survivors keep their score order."""
        mapping = np.asarray(self.prompt_class, dtype=np.int64)
        classes = mapping[result.class_ids] if len(result) else np.zeros(0, np.int64)
        keep = np.flatnonzero(classes >= 0)
        if len(keep) and len(set(self.prompt_class)) < len(self.prompt_class):
            boxes = torch.from_numpy(result.boxes[keep].astype(np.float32))
            kept = batched_nms(boxes, torch.from_numpy(result.scores[keep].astype(np.float32)),
                               torch.from_numpy(classes[keep]), iou).numpy()
            keep = keep[np.sort(kept)]
        picked = result.select(keep)
        ids = classes[keep]
        return replace(picked, class_ids=ids, class_names=[self.classes[i] for i in ids],
                       vocabulary=list(self.classes))

    def to_dict(self) -> dict[str, Any]:
        return {"prompts": list(self.prompts), "classes": list(self.classes), "prompt_class": list(self.prompt_class)}


def parse_ontology(spec: str | Mapping[str, Any] | None) -> Ontology | None:
    """An Ontology from "prompt=class,..." (a bare name is its own class), a .yaml/.yml/.json file, or a mapping
    (prompt -> class, or class -> [prompts]); None for None."""
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        return Ontology.from_pairs(_mapping_pairs(spec, "--ontology"))
    path = Path(spec).expanduser()
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        return Ontology.from_pairs(_mapping_pairs(_read_file(path), f"--ontology {spec}"))
    pairs = []
    for entry in spec.split(","):
        if not entry.strip():
            continue
        prompt, _, cls = entry.partition("=")
        prompt, cls = prompt.strip(), (cls.strip() if "=" in entry else prompt.strip())
        if not prompt or not cls:
            raise DeticError(f"--ontology {entry.strip()!r}: expected PROMPT=CLASS (e.g. \"milk bottle=bottle\")")
        pairs.append((prompt, cls))
    return Ontology.from_pairs(pairs)


def _read_file(path: Path) -> Any:
    if not path.is_file():
        raise DeticError(f"--ontology {path}: file not found")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except ValueError as exc:  # yaml.YAMLError is not a ValueError: caught below
        raise DeticError(f"--ontology {path}: not readable JSON ({exc})") from None
    except Exception as exc:
        raise DeticError(f"--ontology {path}: not readable YAML ({type(exc).__name__})") from None


def _mapping_pairs(data: Any, label: str) -> list[tuple[str, str]]:
    """(prompt, class) pairs of a prompt -> class mapping, or of a class -> [prompts] one."""
    if not isinstance(data, Mapping) or not data:
        raise DeticError(f"{label}: expected a mapping of prompt: class (or class: [prompts])")
    pairs = []
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
            pairs.extend((str(v).strip(), str(key).strip()) for v in value)
        elif isinstance(value, str) and value.strip() and str(key).strip():
            pairs.append((str(key).strip(), value.strip()))
        else:
            raise DeticError(f"{label}: entry {key!r}: expected a class name or a list of prompts")
    return pairs
