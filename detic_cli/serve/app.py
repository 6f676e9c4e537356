"""The HTTP routes of `detic serve` (FastAPI): detect, vocab, health, model, metrics; errors as JSON."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from detic_cli import __version__
from detic_cli.serve.errors import ServeError
from detic_cli.serve.limits import check_raw_type, check_upload_size, read_capped
from detic_cli.serve.service import DetectOptions, Service

FORM_SLACK = 64 << 10  # multipart boundaries and the small fields around the image
VOCAB_BODY_LIMIT = 1 << 20
FIELDS = ("vocab", "vocab_id", "threshold", "masks")
DETECT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "format": "binary"}, **{f: {"type": "string"} for f in FIELDS}}}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "image/png": {"schema": {"type": "string", "format": "binary"}}}}}
VOCAB_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "properties": {"names": {"type": "array", "items": {"type": "string"}},
                                     "vocab": {"type": "string"}}}}}}}


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


class StatusCounter:
    """ASGI middleware: responses counted by status code (for /v1/metrics)."""

    def __init__(self, app, counts: Counter) -> None:
        self.app, self.counts = app, counts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def counting(message) -> None:
            if message["type"] == "http.response.start":
                self.counts[str(message["status"])] += 1
            await send(message)

        await self.app(scope, receive, counting)


async def _form_upload(request: Request, limit: int) -> tuple[bytes, str, dict[str, str]]:
    """(image bytes, file name, text fields) of a multipart upload whose file field is `image`."""
    body = await read_capped(request.stream(), request.headers.get("content-length"), limit + FORM_SLACK)

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    try:
        form = await MultiPartParser(request.headers, chunks(), max_files=1, max_fields=len(FIELDS)).parse()
    except MultiPartException as exc:
        raise ServeError(400, "bad_multipart", f"the multipart body cannot be read: {exc.message}") from None
    image = form.get("image")
    if not isinstance(image, UploadFile):
        raise ServeError(400, "no_image", "the multipart upload has no file field named `image` "
                                          "(curl -F image=@photo.jpg ...)")
    data = await image.read()
    await form.close()
    fields = {k: v for k, v in form.items() if k in FIELDS and isinstance(v, str)}
    return data, Path(image.filename or "upload").name, fields


def _options(query: dict[str, str | None], fields: dict[str, str]) -> DetectOptions:
    """Options from the query string or form fields (one place each)."""
    both = [k for k in FIELDS if query.get(k) is not None and k in fields]
    if both:
        raise ServeError(400, "duplicate_option", f"{', '.join(both)} given both in the URL and in the form")
    return DetectOptions(**{k: fields.get(k, query.get(k)) for k in FIELDS})


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServeError)
    async def serve_error(_request: Request, exc: ServeError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, "invalid_request", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal_error", f"{type(exc).__name__}: {exc}")


def create_app(service: Service) -> FastAPI:
    """The FastAPI app over `service`; its shutdown (after uvicorn has drained the requests in flight)
    closes the batcher."""
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await asyncio.to_thread(service.close)

    app = FastAPI(title="Detic", version=__version__, lifespan=lifespan,
                  description="Open-vocabulary object detection: POST a picture, get its detections.")
    counts: Counter = Counter()
    app.add_middleware(StatusCounter, counts=counts)
    _install_handlers(app)
    limit = service.limits.max_upload_bytes

    @app.post("/v1/detect", openapi_extra=DETECT_BODY, summary="Detect objects in an uploaded picture")
    async def detect(request: Request, vocab: str | None = Query(None, description="\"a,b\" or a built-in name"),
                     vocab_id: str | None = Query(None, description="an id from POST /v1/vocab"),
                     threshold: str | None = Query(None, description="score threshold in [0, 1]"),
                     masks: str | None = Query(None, description="rle (default) or none")) -> JSONResponse:
        query = {"vocab": vocab, "vocab_id": vocab_id, "threshold": threshold, "masks": masks}
        if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            data, name, fields = await _form_upload(request, limit)
        else:
            check_raw_type(request.headers.get("content-type", ""))
            data, name, fields = await read_capped(request.stream(), request.headers.get("content-length"),
                                                   limit), "upload", {}
        check_upload_size(data, service.limits)
        return JSONResponse(await service.detect(data, name, _options(query, fields)))

    @app.post("/v1/vocab", openapi_extra=VOCAB_BODY, summary="Encode and cache a vocabulary; returns its id")
    async def vocab_route(request: Request) -> JSONResponse:
        body = await read_capped(request.stream(), request.headers.get("content-length"), VOCAB_BODY_LIMIT)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        spec = payload.get("names", payload.get("vocab")) if isinstance(payload, dict) else None
        if not (isinstance(spec, str) or (isinstance(spec, list) and all(isinstance(n, str) for n in spec))):
            raise ServeError(422, "bad_vocab", "send JSON {\"names\": [\"cat\", \"dog\"]} or {\"vocab\": \"cat,dog\"}")
        return JSONResponse(await service.register_vocab(spec))

    @app.get("/v1/health", summary="Liveness")
    async def health() -> dict:
        return {"status": "ok", "in_flight": service.in_flight}

    @app.get("/v1/model", summary="The model, its files and vocabulary, the device, the limits")
    async def model() -> dict:
        return service.model_info()

    @app.get("/v1/metrics", summary="Requests by status, batch sizes seen, vocabulary cache")
    async def metrics() -> dict:
        return {**service.metrics(), "responses": dict(counts)}

    return app
