"""`Detector`: the Python face of `detic detect`, over the same engine (load_predictor, stream_results)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from detic_cli.api.inputs import frames_of
from detic_cli.engine.detect_job import stream_results
from detic_cli.engine.model_setup import VocabSpec, load_predictor_parts, vocabulary_of
from detic_cli.engine.result import Result
from detic_cli.engine.tracking import TrackSettings, track_frames
from detic_cli.errors import DeticError


class Detector:
    """An open-vocabulary detector, loaded once; call it on pictures and videos.

    model: a zoo name (`detic zoo list`; default the IN-21K+COCO Swin-B model), or config + weights (a
    Detic YAML and an official-layout checkpoint). vocab: "lvis" (default), "objects365", "openimages",
    "coco", "a,b", a .npy path, a list of names, a (C, D) float array (with `names`), or a Vocabulary.
    threshold: the score cut in [0, 1]; class_thresholds {"person": 0.3} (or "person=0.3,...") filter
    their classes at their own thresholds, leaving the others unchanged. amp: None/"off", "fp16", "bf16".
    batch_size: frames per forward pass. embeddings: keep each detection's classifier-space embedding
    (Result.embeddings, `rescore`). channels: the channel order of numpy inputs ("bgr", as OpenCV
    reads; "rgb" for PIL/matplotlib arrays). Bad input raises detic_cli.DeticError with one line.
    """

    def __init__(self, model: str | None = None, *, config: str | Path | None = None,
                 weights: str | Path | None = None, vocab: VocabSpec = None, names: Sequence[str] | None = None,
                 device: str = "auto", threshold: float = 0.5, amp: str | None = None, batch_size: int = 1,
                 class_thresholds: Mapping[str, float] | str | None = None, embeddings: bool = False,
                 pred_all_class: bool = False, overrides: Sequence[str] = (), channels: str = "bgr",
                 clip_checkpoint: str | Path | None = None, mirror: str | None = None, input_bucket: int = 0) -> None:
        self._clip_checkpoint = Path(clip_checkpoint) if clip_checkpoint else None
        self._mirror = mirror
        self.batch_size = max(1, int(batch_size))
        self.channels = channels
        loaded = load_predictor_parts(
            model=model, config=Path(config) if config else None, weights=Path(weights) if weights else None,
            vocab=vocab, names=names, clip_checkpoint=self._clip_checkpoint, threshold=threshold,
            class_thresholds=class_thresholds, pred_all_class=pred_all_class, overrides=overrides, device=device,
            amp=amp, embeddings=embeddings, mirror=mirror, input_bucket=input_bucket)
        self._predictor, self._thresholds, self._cfg = loaded.predictor, loaded.thresholds, loaded.cfg

    @property
    def class_names(self) -> list[str]:
        """The C class names of the current vocabulary (class_ids index them)."""
        return list(self._predictor.class_names)

    @property
    def device(self) -> str:
        return str(self._predictor.device)

    def set_vocabulary(self, vocab: VocabSpec, names: Sequence[str] | None = None) -> None:
        """Swap the classes without reloading the model (names are CLIP-encoded once, cached in
        DETIC_HOME as for `--vocab`). Per-class thresholds must name classes of the new vocabulary."""
        voc = self._vocabulary(vocab, names)
        self._thresholds.check(voc.names)
        self._predictor.set_vocabulary(voc.embeddings, voc.names)

    def rescore(self, result: Result, vocab: VocabSpec, names: Sequence[str] | None = None,
                threshold: float | None = None) -> Result:
        """`result`'s boxes scored against another vocabulary without running the model (needs
        embeddings=True); see Result.rescore."""
        voc = self._vocabulary(vocab, names)
        if voc.embeddings is None:
            raise DeticError("rescore needs class embeddings (an open-vocabulary model's vocabulary)")
        return result.rescore(voc.embeddings, voc.names, threshold)

    def _vocabulary(self, vocab: VocabSpec, names: Sequence[str] | None):
        return vocabulary_of(self._cfg, vocab, names=names, clip_checkpoint=self._clip_checkpoint,
                             device=str(self._predictor.device), mirror=self._mirror)

    def __call__(self, source: Any, *, channels: str | None = None) -> Result | Iterator[Result]:
        """One Result for one picture (a path to an image file, a numpy array, a PIL image); otherwise (a
        list, folder, glob or video) an iterator of Results in input order, video frames streamed as
        they are decoded. Files are read lazily, so a bad path raises when the iterator reaches it."""
        frames, single = frames_of(source, channels or self.channels)
        results = self._results(frames)
        if single:
            with closing(results):
                return next(results)
        return results

    def track(self, source: Any, settings: TrackSettings | None = None, *, channels: str | None = None,
              **options: Any) -> Iterator[Result]:
        """Results of a video (or anything `__call__` takes), frame by frame as decoded, with `track_ids`: one
        ByteTrack per video, so an object keeps its id across frames (-1 until its track is confirmed);
        pictures come untracked. `settings` (a TrackSettings) or its fields as keywords (buffer=60,
        thresh=0.4, ...) set the tracker; needs `pip install "detic[track]"`."""
        if settings is not None and options:
            raise DeticError("track: give settings or keyword options, not both")
        settings = settings if settings is not None else TrackSettings(**options)
        frames, _ = frames_of(source, channels or self.channels)
        pairs = stream_results(self._predictor, frames, batch_size=self.batch_size, thresholds=self._thresholds)
        for _, result in track_frames(pairs, settings):
            yield result

    def _results(self, frames) -> Iterator[Result]:
        for _, result in stream_results(self._predictor, frames, batch_size=self.batch_size,
                                        thresholds=self._thresholds):
            yield result
