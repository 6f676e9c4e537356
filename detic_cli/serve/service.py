"""One detection service: limits, vocabularies, the batcher and the model, behind the HTTP routes.

A request is checked (threshold, masks, vocabulary, then the image from its header up), resized on a
worker thread, queued for the batcher, and its detections made into the `detic detect --json` record
(`Result.to_dict()`) plus `model`, `vocab_sha256` and `timing_ms`. The model runs at the lowest
threshold a request may ask for; each request's detections are then those scoring above its own
threshold, which are exactly the detections of a run at that threshold (see engine/class_thresholds)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from detic_cli.engine.result import Result
from detic_cli.errors import brief
from detic_cli.serve.batcher import Batcher, QueueFull
from detic_cli.serve.errors import ServeError
from detic_cli.serve.limits import Limits, decode_image, parse_masks, parse_threshold
from detic_cli.serve.runner import ModelRunner
from detic_cli.serve.vocab_cache import ServedVocab, VocabCache
from detic_cli.structures import Instances

log = logging.getLogger("detic.serve")


@dataclass(frozen=True)
class ModelInfo:
    """What GET /v1/model reports: name (zoo name or config stem), files, architecture, device."""

    name: str
    config: str
    weights: str
    weights_sha256: str
    architecture: str
    device: str


@dataclass(frozen=True)
class DetectOptions:
    """A detection request's options, as given (checked by `Service.detect`)."""

    vocab: str | None = None
    vocab_id: str | None = None
    threshold: str | None = None
    masks: str | None = None


def _busy(waiting: str) -> ServeError:
    return ServeError(503, "busy", f"the server is busy ({waiting}); retry shortly", {"Retry-After": "1"})


class Service:
    def __init__(self, runner: ModelRunner, vocabs: VocabCache, limits: Limits, info: ModelInfo, *,
                 max_batch: int = 8, max_wait_ms: float = 10.0, max_queue: int = 64) -> None:
        self.runner, self.vocabs, self.limits, self.info = runner, vocabs, limits, info
        self.batcher = Batcher(self.runner.run, max_batch=max_batch, max_wait_s=max_wait_ms / 1000,
                               max_queue=max_queue)
        self.in_flight = 0
        self.model_errors = 0

    async def detect(self, data: bytes, filename: str, options: DetectOptions) -> dict:
        """The JSON record of one uploaded picture; a bad request raises ServeError (4xx, 503 when busy,
        500 when the model fails)."""
        self.in_flight += 1
        try:
            return await self._detect(data, filename, options)
        finally:
            self.in_flight -= 1

    async def _detect(self, data: bytes, filename: str, options: DetectOptions) -> dict:
        start = time.perf_counter()
        threshold = parse_threshold(options.threshold, self.limits)
        masks = parse_masks(options.masks)
        if self.batcher.full():
            raise _busy(f"{self.batcher.max_queue} requests waiting")
        vocab = await asyncio.to_thread(self.vocabs.resolve, options.vocab, options.vocab_id)
        image = await asyncio.to_thread(decode_image, data, self.limits)
        inputs = await asyncio.to_thread(self.runner.prepare, image)
        try:
            job = self.batcher.submit(self.runner.batch_key(vocab, inputs), (vocab, inputs))
        except QueueFull as exc:
            raise _busy(str(exc)) from None
        except RuntimeError:
            raise ServeError(503, "shutting_down", "the server is shutting down", {"Retry-After": "1"}) from None
        try:
            instances = await asyncio.wrap_future(job.future)
        except Exception as exc:
            self.model_errors += 1
            log.exception("the model failed on a batch of %d", job.batch)
            raise ServeError(500, "model_error", f"the model failed on this request: {brief(exc)}") from None
        done = time.monotonic()
        record = await asyncio.to_thread(self._record, instances, vocab, filename, threshold, masks)
        record.update(model=self.info.name, vocab_sha256=vocab.id, timing_ms={
            "queue": round((job.started - job.enqueued) * 1000, 3),
            "inference": round((done - job.started) * 1000, 3),
            "total": round((time.perf_counter() - start) * 1000, 3), "batch_size": job.batch})
        return record

    def _record(self, instances: Instances, vocab: ServedVocab, filename: str, threshold: float,
                masks: bool) -> dict:
        result = Result.from_instances(instances, vocabulary=vocab.names, source=filename, frame_index=None)
        if threshold > self.limits.min_threshold:
            result = result.select(result.scores > threshold)
        if not masks and result.masks is not None:
            result = replace(result, masks=None)
        return result.to_dict()

    async def register_vocab(self, spec: str | list[str]) -> dict:
        """POST /v1/vocab: encode (or find) a vocabulary; its id serves later requests as `vocab_id`."""
        vocab, found = await asyncio.to_thread(self.vocabs.register, spec)
        return {"vocab_id": vocab.id, "names": vocab.names, "classes": len(vocab.names), "found": found}

    def model_info(self) -> dict:
        default = self.vocabs.default
        return {**asdict(self.info), "config_name": Path(self.info.config).name,
                "vocabulary": {"vocab_id": default.id, "source": default.source, "classes": len(default.names)},
                "open_vocabulary": self.vocabs.dim is not None, "limits": asdict(self.limits)}

    def metrics(self) -> dict:
        return {"in_flight": self.in_flight, "model_errors": self.model_errors, "batcher": self.batcher.snapshot(),
                "vocab_cache": self.vocabs.snapshot()}

    def close(self) -> None:
        """Run what is queued, then stop the batcher (after the server has stopped taking requests)."""
        self.batcher.close()
