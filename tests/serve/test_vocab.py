"""Request vocabularies: encoded once (POST /v1/vocab, or names in a request), then served by id from memory or
from the CLI's on-disk cache without a CLIP pass."""

from __future__ import annotations

import pytest

from detic_cli.clip import encoder as clip_encoder
from detic_cli.clip.encoder import EncoderSpec, encoder_id
from detic_cli.vocab import cache
from detic_cli.vocab.resolve import resolve_vocabulary
from tests.serve.conftest import live_server


def _no_clip(*_args, **_kwargs):
    raise AssertionError("CLIP was loaded although the vocabulary is cached")


@pytest.mark.slow
def test_names_are_encoded_once_then_served_by_id(make_service, parity_clip, astronaut_jpg):
    service = make_service(clip_checkpoint=parity_clip, min_threshold=0.05, default_threshold=0.05)
    with live_server(service) as client:
        first = client.post("/v1/vocab", json={"names": ["cat", "dog", "astronaut"]})
        again = client.post("/v1/vocab", json={"vocab": "cat, dog, astronaut"})
        by_id = client.post("/v1/detect", params={"vocab_id": first.json()["vocab_id"]},
                            files={"image": ("a.jpg", astronaut_jpg)})
        by_names = client.post("/v1/detect", params={"vocab": "cat,dog,astronaut"},
                               files={"image": ("a.jpg", astronaut_jpg)})
        metrics = client.get("/v1/metrics").json()
    assert first.status_code == 200 and first.json()["found"] == "encoded" and first.json()["classes"] == 3
    encoder = encoder_id(EncoderSpec(clip_checkpoint=str(parity_clip)))
    key = cache.cache_key(["cat", "dog", "astronaut"], "a {}", encoder)
    assert first.json()["vocab_id"] == key  # the id is the CLI's on-disk cache key
    assert again.json() == {**first.json(), "found": "memory"}
    assert by_id.status_code == 200 and by_id.json()["vocab_sha256"] == key
    assert by_id.json()["instances"] and {i["class_name"] for i in by_id.json()["instances"]} <= {"cat", "dog",
                                                                                                  "astronaut"}
    assert by_names.json()["instances"] == by_id.json()["instances"]
    assert metrics["vocab_cache"]["clip_encodes"] == 1  # one CLIP pass for the four uses


@pytest.mark.slow
def test_a_vocabulary_the_cli_cached_costs_no_clip_pass(make_service, parity_clip, astronaut_jpg, monkeypatch):
    cli = resolve_vocabulary("cat,dog", clip_checkpoint=str(parity_clip))  # what `detect --vocab cat,dog` does
    monkeypatch.setattr(clip_encoder, "_LOADED", {})
    monkeypatch.setattr(clip_encoder, "load_encoder", _no_clip)
    with live_server(make_service(clip_checkpoint=parity_clip)) as client:
        registered = client.post("/v1/vocab", json={"names": ["cat", "dog"]})
        detected = client.post("/v1/detect", params={"vocab": "cat,dog", "threshold": "0.1"},
                               files={"image": ("a.jpg", astronaut_jpg)})
        metrics = client.get("/v1/metrics").json()
    assert registered.status_code == 200 and registered.json()["found"] == "disk"
    assert detected.status_code == 200 and detected.json()["instances"]
    assert {i["class_name"] for i in detected.json()["instances"]} <= {"cat", "dog"}
    assert metrics["vocab_cache"]["clip_encodes"] == 0 and metrics["vocab_cache"]["disk_hits"] == 1
    assert cli.names == registered.json()["names"]
