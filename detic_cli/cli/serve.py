"""`detic serve`: the detector behind an HTTP API (FastAPI on uvicorn), loopback only by default."""

from __future__ import annotations

import signal
from pathlib import Path

import typer
from rich.console import Console

from detic_cli.cli.app import app
from detic_cli.cli.options import amp_option, clip_checkpoint_option, device_option, mirror_option, vocab_option
from detic_cli.engine.model_setup import inference_amp
from detic_cli.errors import DeticError

_err = Console(stderr=True, markup=False)


@app.command("serve")
def serve(
    overrides: list[str] | None = typer.Argument(None, help="KEY.PATH=VALUE config overrides."),
    model: str | None = typer.Option(None, "--model", "-m", help="Zoo model name (default: the IN-21K+COCO "
                                                                 "Swin-B model)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Detic YAML (original or project)."),
    weights: Path | None = typer.Option(None, "--weights", "-w", help="Checkpoint in the official layout."),
    vocab: str | None = vocab_option("Default vocabulary: lvis (default) | objects365 | openimages | coco | \"a,b\" | "
                                     "embeddings .npy"),
    clip_checkpoint: Path | None = clip_checkpoint_option(),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 exposes the service)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    device: str = device_option(),
    amp: str = amp_option(help="off | fp16 | bf16 (the backbone in half precision)."),
    threshold: float = typer.Option(0.5, "--threshold", "-t", help="Score threshold of requests that give none."),
    min_threshold: float | None = typer.Option(None, "--min-threshold", help="The lowest threshold a request may "
                                               "ask for: the model's score cut (default 0.1, or --threshold if lower; "
                                               "lower costs more)."),
    max_batch: int = typer.Option(8, "--max-batch", min=1, help="Requests per forward pass (1: no batching)."),
    max_wait_ms: float = typer.Option(10.0, "--max-wait-ms", min=0, help="How long a request waits for others "
                                                                         "to share its forward pass."),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", min=0.001, help="Largest image file accepted."),
    max_pixels: float = typer.Option(40e6, "--max-pixels", min=1, help="Largest width x height accepted."),
    max_classes: int = typer.Option(2048, "--max-classes", min=1, help="Most class names in one request."),
    workers_queue: int = typer.Option(64, "--workers-queue", min=1, help="Requests that may wait for the model; "
                                                                         "more are answered 503."),
    mirror: str | None = mirror_option(),
) -> None:
    """Serve detections over HTTP: POST /v1/detect, /v1/vocab; GET /v1/health, /v1/model, /v1/metrics, /docs."""
    import uvicorn

    from detic_cli.serve.app import create_app
    from detic_cli.serve.build import build_service
    from detic_cli.serve.limits import Limits

    bad = [w for w in overrides or [] if "=" not in w]
    if bad:
        raise DeticError(f"{bad[0]!r}: serve takes no inputs; trailing words are KEY.PATH=VALUE config overrides")
    limits = Limits(max_upload_bytes=int(max_upload_mb * (1 << 20)), max_pixels=int(max_pixels),
                    max_classes=max_classes, default_threshold=threshold,
                    min_threshold=min(0.1, threshold) if min_threshold is None else min_threshold)
    inference_amp(amp)
    service = build_service(model=model, config=config, weights=weights, vocab=vocab, overrides=overrides or [],
                            clip_checkpoint=clip_checkpoint, device=device, amp=amp, mirror=mirror, limits=limits,
                            max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=workers_queue)
    info = service.info
    _err.print(f"serve: {info.name} on {info.device}, {len(service.vocabs.default.names)} classes; "
               f"http://{host}:{port}/docs", highlight=False, soft_wrap=True)
    server = uvicorn.Server(uvicorn.Config(create_app(service), host=host, port=port, log_level="info"))
    # uvicorn drains the requests in flight on SIGTERM, then re-raises the signal under the handler found
    # here: a drained shutdown ends the command normally (exit 0) instead of by the signal.
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run()
    _err.print("serve: stopped", highlight=False)
