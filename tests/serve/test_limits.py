"""Every bad input gets its own 4xx JSON error, nothing is queued for it, and the server goes on answering."""

from __future__ import annotations

import struct
import zlib

import pytest

from tests.serve.conftest import live_server

UPLOAD_LIMIT = 120_000  # bytes; the 160x160 test JPEG is far smaller


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels but holds a few bytes of data: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def _cases(jpg: bytes) -> list[tuple[str, dict, int, str]]:
    """(label, httpx.post keyword arguments, status, error code)."""
    up = {"files": {"image": ("a.jpg", jpg)}}
    noise = bytes(range(256)) * (UPLOAD_LIMIT // 256 + 8)
    return [
        ("empty raw body", {"content": b"", "headers": {"Content-Type": "image/jpeg"}}, 400, "empty_body"),
        ("empty upload", {"files": {"image": ("a.jpg", b"")}}, 400, "empty_body"),
        ("no image field", {"files": {"photo": ("a.jpg", jpg)}}, 400, "no_image"),
        ("text bytes", {"files": {"image": ("a.jpg", b"hello, not a picture")}}, 415, "not_an_image"),
        ("text content type", {"content": jpg, "headers": {"Content-Type": "text/plain"}}, 415,
         "unsupported_media_type"),
        ("truncated JPEG", {"files": {"image": ("a.jpg", jpg[: len(jpg) // 2])}}, 400, "corrupt_image"),
        ("raw body over the limit", {"content": noise, "headers": {"Content-Type": "image/jpeg"}}, 413,
         "upload_too_large"),
        ("upload over the limit", {"files": {"image": ("a.jpg", noise)}}, 413, "upload_too_large"),
        ("pixel bomb", {"files": {"image": ("b.png", _png_header_only(100_000, 100_000))}}, 413,
         "image_too_large"),
        ("over the pixel limit", {"files": {"image": ("b.png", _png_header_only(1200, 1000))}}, 413,
         "image_too_large"),
        ("unknown vocab id", {"params": {"vocab_id": "ab" * 32}, **up}, 404, "unknown_vocab_id"),
        ("malformed vocab id", {"params": {"vocab_id": "../../etc/passwd"}, **up}, 404, "unknown_vocab_id"),
        ("too many classes", {"params": {"vocab": "a,b,c,d"}, **up}, 422, "too_many_classes"),
        ("no class names", {"params": {"vocab": ", ,"}, **up}, 422, "bad_vocab"),
        ("vocab and vocab id", {"params": {"vocab": "cat", "vocab_id": "ab" * 32}, **up}, 400, "vocab_conflict"),
        ("negative threshold", {"params": {"threshold": "-0.1"}, **up}, 422, "bad_threshold"),
        ("threshold over 1", {"params": {"threshold": "1.5"}, **up}, 422, "bad_threshold"),
        ("threshold not a number", {"params": {"threshold": "nan"}, **up}, 422, "bad_threshold"),
        ("threshold below the model's", {"files": up["files"], "data": {"threshold": "0.05"}}, 422,
         "bad_threshold"),
        ("bad masks", {"params": {"masks": "polygon"}, **up}, 422, "bad_masks"),
        ("option twice", {"params": {"masks": "none"}, "files": up["files"], "data": {"masks": "rle"}}, 400,
         "duplicate_option"),
    ]


def test_every_bad_input_gets_its_4xx_and_the_server_goes_on(make_service, astronaut_jpg):
    service = make_service(max_upload_bytes=UPLOAD_LIMIT, max_pixels=1_000_000, max_classes=3)
    with live_server(service) as client:
        for label, kwargs, status, code in _cases(astronaut_jpg):
            response = client.post("/v1/detect", **kwargs)
            assert response.status_code == status, (label, response.text)
            assert response.json()["error"]["code"] == code, label
            assert response.json()["error"]["message"], label
        assert service.batcher.snapshot()["batches"] == 0  # nothing half-done: no bad request reached the model
        good = client.post("/v1/detect", files={"image": ("a.jpg", astronaut_jpg)})
        metrics = client.get("/v1/metrics").json()
    assert good.status_code == 200 and good.json()["instances"]
    assert metrics["batcher"]["batch_sizes"] == {"1": 1}
    assert sum(v for k, v in metrics["responses"].items() if k.startswith("4")) == len(_cases(astronaut_jpg))


@pytest.mark.parametrize("body", [b"not json", b'{"names": []}', b'{"names": [1, 2]}', b'{"other": "cat"}',
                                  b'{"names": ["a", "b", "c", "d"]}'])
def test_bad_vocabulary_requests(make_service, body):
    with live_server(make_service(max_classes=3)) as client:
        response = client.post("/v1/vocab", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["error"]["code"] in {"bad_vocab", "too_many_classes"}
