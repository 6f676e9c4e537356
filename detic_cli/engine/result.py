"""`Result`: the detections of one picture or video frame, the one type every output is made from."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from detic_cli.errors import DeticError
from detic_cli.modeling.roi_heads.rescoring import RegionScorer
from detic_cli.structures import Instances


@dataclass(frozen=True, eq=False)
class Result:
    """Detections of one image, in original-image pixels, best first as the model returns them.

    boxes: (N, 4) float32 XYXY pixels of the original image; scores: (N,) float32 in [0, 1];
    class_ids: (N,) int64 indices into `vocabulary`; class_names: the N detections' class names;
    masks: (N, H, W) bool, or None for a model without a mask head; image_size: (H, W);
    source: the file name (or "<array>" for an in-memory picture); frame_index: the video frame
    number, None for a picture. vocabulary: the C class names the model scored.
    embeddings: (N, D) float32, each detection's classifier-space embedding (the projected,
    L2-normalised box feature of the last stage), only when asked for (`embeddings=True`), else None;
    stage_embeddings (N, S, D) per cascade stage and proposal_scores (N,) in [0, 1] are what
    `rescore` needs, with `scorer` (the model's scoring terms). image: the BGR uint8 (H, W, 3) input,
    kept for `plot`/`crops` (None when not kept). track_ids: (N,) int64 video track identities from
    `detic_cli.engine.tracking` (>= 0, stable across a video's frames; -1 for a detection the tracker has
    not confirmed as a track), None when not tracked.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: list[str]
    masks: np.ndarray | None
    image_size: tuple[int, int]
    source: str
    frame_index: int | None
    vocabulary: list[str]
    stage_embeddings: np.ndarray | None = None
    proposal_scores: np.ndarray | None = None
    scorer: RegionScorer | None = None
    image: np.ndarray | None = None
    track_ids: np.ndarray | None = None

    @staticmethod
    def from_instances(instances: Instances, *, vocabulary: list[str], source: str, frame_index: int | None,
                       image: np.ndarray | None = None, scorer: RegionScorer | None = None) -> Result:
        """The Result of a Predictor's `Instances` (CPU, original pixels)."""
        class_ids = instances.pred_classes.numpy().astype(np.int64)
        stage = instances.pred_embeddings.numpy() if instances.has("pred_embeddings") else None
        return Result(
            boxes=instances.pred_boxes.tensor.numpy().astype(np.float32).reshape(-1, 4),
            scores=instances.scores.numpy().astype(np.float32), class_ids=class_ids,
            class_names=[_name(vocabulary, int(c)) for c in class_ids],
            masks=instances.pred_masks.numpy().astype(bool) if instances.has("pred_masks") else None,
            image_size=(int(instances.image_size[0]), int(instances.image_size[1])), source=source,
            frame_index=frame_index, vocabulary=list(vocabulary), stage_embeddings=stage,
            proposal_scores=instances.proposal_scores.numpy() if instances.has("proposal_scores") else None,
            scorer=scorer if stage is not None else None, image=image)

    def __len__(self) -> int:
        return len(self.scores)

    def __repr__(self) -> str:
        frame = "" if self.frame_index is None else f", frame {self.frame_index}"
        return f"Result({self.source}{frame}: {len(self)} detections, image {self.image_size[0]}x{self.image_size[1]})"

    @property
    def embeddings(self) -> np.ndarray | None:
        """(N, D) float32: the last stage's classifier-space embedding of each detection, or None."""
        return None if self.stage_embeddings is None else self.stage_embeddings[:, -1]

    def select(self, keep: np.ndarray | Sequence[int]) -> Result:
        """The detections at `keep` (indices or an (N,) bool mask), in that order."""
        idx = np.arange(len(self))[np.asarray(keep)] if len(self) else np.zeros(0, np.int64)

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return replace(self, boxes=self.boxes[idx], scores=self.scores[idx], class_ids=self.class_ids[idx],
                       class_names=[self.class_names[i] for i in idx], masks=pick(self.masks),
                       stage_embeddings=pick(self.stage_embeddings), proposal_scores=pick(self.proposal_scores),
                       track_ids=pick(self.track_ids))

    def to_dict(self) -> dict[str, Any]:
        """The `detic detect --json` record (schema of ../shared/README.md): file_name, height, width,
        frame_index (videos only), instances [{box_xyxy, score, class_index, class_name, mask_rle?,
        embedding? (D floats, with embeddings), track_id? (int, with tracking; -1: not a confirmed track)}]."""
        from detic_cli.engine.outputs import encode_mask

        emb = self.embeddings
        items = []
        for i in range(len(self)):
            item: dict[str, Any] = {"box_xyxy": [float(v) for v in self.boxes[i]], "score": float(self.scores[i]),
                                    "class_index": int(self.class_ids[i]), "class_name": self.class_names[i]}
            if self.masks is not None:
                item["mask_rle"] = encode_mask(self.masks[i])
            if emb is not None:
                item["embedding"] = [float(v) for v in emb[i]]
            if self.track_ids is not None:
                item["track_id"] = int(self.track_ids[i])
            items.append(item)
        record: dict[str, Any] = {"file_name": self.source, "height": self.image_size[0], "width": self.image_size[1]}
        if self.frame_index is not None:
            record["frame_index"] = self.frame_index
        record["instances"] = items
        return record

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def to_coco(self, image_id: int, category_ids: Sequence[int] | Mapping[int, int] | None = None) -> list[dict]:
        """COCO results: {image_id, category_id, bbox [x, y, w, h] pixels, score, segmentation (RLE)}.
        category_ids maps a class index to the dataset's id (a list or dict); default: index + 1."""
        from detic_cli.engine.formats import coco_results

        return coco_results(self, image_id, category_ids)

    def to_supervision(self) -> Any:
        """A `supervision.Detections` (xyxy, mask, confidence, class_id, data["class_name"], tracker_id when
        tracked)."""
        from detic_cli.engine.formats import supervision_detections

        return supervision_detections(self)

    def plot(self) -> np.ndarray:
        """The annotated BGR uint8 (H, W, 3) picture `detic detect --output` writes."""
        from detic_cli.engine.visualize import draw_detections

        if self.image is None:
            raise DeticError("this Result has no image to draw on (it was made without one)")
        return draw_detections(self.image, self.boxes, self.scores, self.class_ids, self.masks, self.vocabulary,
                               track_ids=self.track_ids)

    def save(self, path: str | Path) -> Path:
        """Write by suffix: .json (to_dict), .npz (arrays, embeddings included), .txt (YOLO labels) or a
        picture (.jpg, .png, ...: `plot`). The file is written atomically; returns its path."""
        from detic_cli.engine.formats import save_result

        return save_result(self, Path(path))

    def class_scores(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, C) scores of the detections' boxes for the C classes of (C, D) text `embeddings`, as the
        model would score them (needs embeddings=True)."""
        if self.stage_embeddings is None or self.scorer is None or self.proposal_scores is None:
            raise DeticError("rescore needs the region embeddings: detect with embeddings=True (--embeddings)")
        return self.scorer.class_scores(self.stage_embeddings, self.proposal_scores, embeddings)

    def rescore(self, embeddings: np.ndarray, names: Sequence[str], threshold: float | None = None) -> Result:
        """The same boxes (and masks) labelled with the best of the C classes of `embeddings` (C, D) named
        `names`, scored as the model would; with `threshold`, only detections scoring above it. Against the
        model's own vocabulary this gives back the original classes and scores. `Detector.rescore` takes
        any vocabulary spec ("a,b", a list of names, a built-in name)."""
        if len(names) != len(embeddings):
            raise DeticError(f"{len(names)} names for {len(embeddings)} class embeddings")
        scores = self.class_scores(embeddings)
        best = scores.argmax(axis=1) if len(self) else np.zeros(0, np.int64)
        out = replace(self, scores=scores[np.arange(len(self)), best].astype(np.float32),
                      class_ids=best.astype(np.int64), class_names=[str(names[c]) for c in best],
                      vocabulary=[str(n) for n in names])
        return out if threshold is None else out.select(out.scores > threshold)


def _name(vocabulary: list[str], index: int) -> str:
    return vocabulary[index] if index < len(vocabulary) else f"class_{index}"
