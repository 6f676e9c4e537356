"""One batch through the Predictor, on the batcher's thread: the vocabulary the batch asks for, then a
single forward pass (the Predictor runs same-size inputs together)."""

from __future__ import annotations

import numpy as np

from detic_cli.engine.predictor import Predictor
from detic_cli.serve.vocab_cache import ServedVocab
from detic_cli.structures import Instances


class ModelRunner:
    """predictor: loaded with `current` as its vocabulary. `prepare` (thread-safe) makes a request's
    network input; `run` (one thread only) gives the detections of a batch sharing one vocabulary."""

    def __init__(self, predictor: Predictor, current: ServedVocab) -> None:
        self.predictor = predictor
        self._current: str | None = current.id

    def prepare(self, image_bgr: np.ndarray) -> dict:
        return self.predictor.prepare([image_bgr])[0]

    @staticmethod
    def batch_key(vocab: ServedVocab, inputs: dict) -> tuple:
        """Requests with equal keys may share a forward pass: same vocabulary, same input size."""
        return vocab.id, tuple(inputs["image"].shape)

    def run(self, payloads: list[tuple[ServedVocab, dict]]) -> list[Instances]:
        vocab = payloads[0][0]
        if any(v.id != vocab.id for v, _ in payloads):
            raise ValueError("a batch mixes vocabularies")
        if vocab.id != self._current:
            self._current = None  # unknown until the switch succeeds
            self.predictor.set_vocabulary(vocab.embeddings, vocab.names)
            self._current = vocab.id
        return self.predictor.predict([inputs for _, inputs in payloads])
