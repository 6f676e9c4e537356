"""Request vocabularies: names -> classifier embeddings, each CLIP pass done once.

A vocabulary's id is a sha256: for class names it is the key of the CLI's on-disk cache
(`DETIC_HOME/vocab/<key>.npy`, over names, prompt and encoder), so a vocabulary that `detic detect
--vocab "a,b"` encoded, or that this server encoded before a restart, costs no CLIP pass; for a
built-in or file vocabulary it is the sha256 of its names and array. The most recent ones stay in
memory (an LRU); the server's default vocabulary always does."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np

from detic_cli.clip.encoder import EncoderSpec, encoder_id
from detic_cli.errors import DeticError
from detic_cli.serve.errors import ServeError
from detic_cli.vocab import cache
from detic_cli.vocab.build import embed_names
from detic_cli.vocab.names import drop_duplicates, split_names
from detic_cli.vocab.prompts import DEFAULT_PROMPT, prompt_template
from detic_cli.vocab.resolve import BUILTIN_VOCABULARIES, Vocabulary, resolve_vocabulary
from detic_cli.vocab.sidecar import array_sha256, read_sidecar

_HEX_ID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, eq=False)
class ServedVocab:
    """id: sha256 hex; names: the C class names; embeddings: (C, D) float32, or None for a closed model's
    own classes; source: where it came from (builtin:lvis, npy:PATH, names)."""

    id: str
    names: list[str]
    embeddings: np.ndarray | None
    source: str


def content_id(names: list[str], embeddings: np.ndarray | None) -> str:
    """The id of a vocabulary that is not CLIP-encoded names: its names and its array."""
    blob = json.dumps({"names": names, "embeddings": None if embeddings is None else array_sha256(embeddings)})
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def served(voc: Vocabulary) -> ServedVocab:
    return ServedVocab(content_id(voc.names, voc.embeddings), list(voc.names), voc.embeddings, voc.source)


class VocabCache:
    """default: the server's vocabulary; dim: the classifier's embedding size (None: a closed model,
    whose classes no request may change); clip_checkpoint/device/mirror: as for `detic detect`;
    max_classes: names one request may bring; capacity: vocabularies kept in memory."""

    def __init__(self, default: Vocabulary, *, dim: int | None, clip_checkpoint: str | None = None,
                 device: str = "cpu", mirror: str | None = None, max_classes: int = 2048,
                 capacity: int = 64) -> None:
        self.dim = dim
        self._spec = EncoderSpec(clip_checkpoint=clip_checkpoint)
        self._encoder = encoder_id(self._spec) if dim is not None else ""
        self._template = prompt_template(DEFAULT_PROMPT)
        self.default = served(default)
        if default.source == "names":  # the id a request naming the same classes gets
            self.default = replace(self.default, id=cache.cache_key(default.names, self._template, self._encoder))
        self._device, self._mirror = device, mirror
        self.max_classes, self.capacity = max_classes, capacity
        self._lru: OrderedDict[str, ServedVocab] = OrderedDict()
        self._builtins: dict[str, str] = {}  # built-in name -> id
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self.stats = {"memory_hits": 0, "disk_hits": 0, "clip_encodes": 0}

    def resolve(self, vocab: str | None, vocab_id: str | None) -> ServedVocab:
        """The vocabulary of a detection request: `vocab` (names "a,b" or a built-in name), `vocab_id`
        (from POST /v1/vocab), or neither (the server's default)."""
        if vocab and vocab_id:
            raise ServeError(400, "vocab_conflict", "give vocab or vocab_id, not both")
        if vocab_id:
            return self.get(vocab_id)
        if vocab is None or not vocab.strip():
            return self.default
        return self.register(vocab)[0]

    def get(self, vocab_id: str) -> ServedVocab:
        """A vocabulary by id: in memory, else in the on-disk cache; 404 when unknown."""
        vocab_id = vocab_id.strip().lower()
        if vocab_id == self.default.id:
            return self.default
        with self._lock:
            if vocab_id in self._lru:
                self._lru.move_to_end(vocab_id)
                self.stats["memory_hits"] += 1
                return self._lru[vocab_id]
        found = self._from_disk(vocab_id) if _HEX_ID.fullmatch(vocab_id) else None
        if found is None:
            raise ServeError(404, "unknown_vocab_id", f"vocab_id {vocab_id[:80]!r} is not known here: register the "
                                                      "names with POST /v1/vocab first")
        return self._keep(found)

    def register(self, spec: str | list[str]) -> tuple[ServedVocab, str]:
        """(vocabulary, how it was found: memory, disk, encoded or builtin) of names ("a,b" or a list) or a
        built-in name; names are CLIP-encoded only when no cache holds them."""
        self._check_open()
        if isinstance(spec, str) and spec.strip().lower() in BUILTIN_VOCABULARIES:
            return self._builtin(spec.strip().lower()), "builtin"
        names = self._names(spec)
        key = cache.cache_key(names, self._template, self._encoder)
        with self._lock:
            if key in self._lru:
                self._lru.move_to_end(key)
                self.stats["memory_hits"] += 1
                return self._lru[key], "memory"
        with self._encode_lock:  # one CLIP pass at a time; a twin request waiting here then finds it cached
            if (hit := self.get_cached(key)) is not None:
                return hit, "memory"
            if (disk := self._from_disk(key)) is not None:
                return self._keep(disk), "disk"
            return self._keep(self._encode(names, key)), "encoded"

    def get_cached(self, key: str) -> ServedVocab | None:
        with self._lock:
            return self._lru.get(key)

    def _check_open(self) -> None:
        if self.dim is None:
            raise ServeError(400, "fixed_vocabulary", "this model has a fixed, learned classifier: its vocabulary "
                                                      "cannot change (omit vocab and vocab_id)")

    def _names(self, spec: str | list[str]) -> list[str]:
        try:
            if isinstance(spec, str):
                names = split_names(spec, "vocab")
            else:
                names = [str(n).strip() for n in spec]
                if not names or not all(names):
                    raise DeticError("names: give at least one class name, none of them empty")
        except DeticError as exc:
            raise ServeError(422, "bad_vocab", str(exc)) from None
        if len(names) > self.max_classes:
            raise ServeError(422, "too_many_classes", f"{len(names)} class names, over this server's limit of "
                                                      f"{self.max_classes} (--max-classes)")
        return drop_duplicates(names, "vocab")

    def _from_disk(self, key: str) -> ServedVocab | None:
        array = cache.load_cached(key)
        side = read_sidecar(cache.vocab_dir() / f"{key}.npy") if array is not None else None
        names = side.get("names") if side else None
        if array is None or not isinstance(names, list) or len(names) != len(array):
            return None
        self.stats["disk_hits"] += 1
        return self._checked(ServedVocab(key, [str(n) for n in names], array, "names"))

    def _encode(self, names: list[str], key: str) -> ServedVocab:
        try:
            emb, _ = embed_names(names, self._template, self._spec, device=self._device)
        except DeticError as exc:
            raise ServeError(500, "vocab_encoder_failed", f"the class names could not be encoded: {exc}") from None
        self.stats["clip_encodes"] += 1
        return self._checked(ServedVocab(key, names, emb, "names"))

    def _builtin(self, name: str) -> ServedVocab:
        with self._lock:
            known = self._builtins.get(name)
            if known in self._lru:
                self._lru.move_to_end(known)
                return self._lru[known]
        try:
            voc = served(resolve_vocabulary(name, mirror=self._mirror))
        except DeticError as exc:
            raise ServeError(503, "vocab_unavailable", str(exc)) from None
        self._builtins[name] = voc.id
        return self._keep(self._checked(voc))

    def _checked(self, voc: ServedVocab) -> ServedVocab:
        if voc.embeddings is not None and voc.embeddings.shape[1] != self.dim:
            raise ServeError(422, "vocab_dimension", f"the vocabulary has {voc.embeddings.shape[1]}-dimensional "
                                                     f"embeddings; this model's classifier takes {self.dim}")
        return voc

    def _keep(self, voc: ServedVocab) -> ServedVocab:
        with self._lock:
            self._lru[voc.id] = voc
            self._lru.move_to_end(voc.id)
            while len(self._lru) > self.capacity:
                self._lru.popitem(last=False)
        return voc

    def snapshot(self) -> dict:
        with self._lock:
            return {**self.stats, "in_memory": len(self._lru), "capacity": self.capacity}
