"""The R18 parity detector behind a real uvicorn on 127.0.0.1 (a free port), for the `detic serve` tests."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import httpx
import numpy as np
import pytest
import uvicorn

R18 = "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml"
VOCAB = "detic-metadata/lvis_v1_clip_a+cname.npy"
SMALL = ("INPUT.MIN_SIZE_TEST=128", "INPUT.MAX_SIZE_TEST=160")  # quick; the CLI comparisons use the same


@pytest.fixture(scope="session")
def r18_files(shared_dir, parity_checkpoint):
    """(config, weights, default vocabulary .npy) of the R18 parity model."""
    return shared_dir / "detic-reference/configs" / R18, parity_checkpoint(R18), shared_dir / VOCAB


@pytest.fixture(scope="session")
def picture(shared_dir, tmp_path_factory):
    """A 160x160 JPEG of the astronaut (small, so that masks are pasted quickly): its path."""
    from PIL import Image

    path = tmp_path_factory.mktemp("serve_pictures") / "astronaut.jpg"
    with Image.open(shared_dir / "parity/images/astronaut.jpg") as img:
        img.resize((160, 160), Image.BILINEAR).save(path, quality=90)
    return path


@pytest.fixture(scope="session")
def astronaut_jpg(picture) -> bytes:
    return picture.read_bytes()


@pytest.fixture(scope="session")
def small_base(r18_files):
    """A Service over the small R18 model (its runner and model info are shared by `make_service`)."""
    from detic_cli.serve.build import build_service

    config, weights, vocab = r18_files
    service = build_service(config=config, weights=weights, vocab=str(vocab), overrides=SMALL, device="cpu")
    service.close()
    return service


@pytest.fixture
def make_service(small_base):
    """Factory: a Service over the small R18 model with these limits, batching and runner (default: the shared
    one); its vocabulary cache is new (the test's DETIC_HOME)."""
    from detic_cli.serve.limits import Limits
    from detic_cli.serve.service import Service
    from detic_cli.serve.vocab_cache import VocabCache

    made = []

    def make(*, runner=None, clip_checkpoint=None, max_classes: int = 2048, max_batch: int = 8,
             max_wait_ms: float = 10.0, max_queue: int = 64, **limits):
        base = small_base.vocabs.default
        from detic_cli.vocab.resolve import Vocabulary

        vocabs = VocabCache(Vocabulary(base.names, base.embeddings, base.source), dim=512, device="cpu",
                            clip_checkpoint=str(clip_checkpoint) if clip_checkpoint else None,
                            max_classes=max_classes)
        service = Service(runner or small_base.runner, vocabs, Limits(max_classes=max_classes, **limits),
                          small_base.info, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue)
        made.append(service)
        return service

    yield make
    for service in made:
        service.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def live_server(service):
    """A real uvicorn serving `service` on 127.0.0.1 (a free port) in a thread; yields an httpx.Client on it.
    Leaving stops the server as SIGTERM would (in-flight requests first)."""
    from detic_cli.serve.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(service), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def instances_equal(a: list[dict], b: list[dict]) -> bool:
    """Same detections: classes and masks exactly, boxes and scores to float32 rounding."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if (x["class_index"], x["class_name"], x.get("mask_rle")) != (y["class_index"], y["class_name"],
                                                                      y.get("mask_rle")):
            return False
        if not np.allclose(x["box_xyxy"], y["box_xyxy"], rtol=0, atol=1e-3) or abs(x["score"] - y["score"]) > 1e-5:
            return False
    return True
