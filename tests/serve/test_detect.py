"""POST /v1/detect on a real uvicorn: the `detic detect --json` record, options, the other routes."""

from __future__ import annotations

import hashlib
import json

from tests.serve.conftest import SMALL, live_server

EXTRAS = ("model", "vocab_sha256", "timing_ms")


def test_upload_and_raw_body_give_the_cli_record(make_service, run_cli, r18_files, picture, tmp_path,
                                                  astronaut_jpg):
    """The server runs the model at its --min-threshold (0.1) and keeps what scores above the request's 0.5:
    exactly `detic detect --threshold 0.5`."""
    config, weights, vocab = r18_files
    code, _, err = run_cli("detect", picture, "--config", config, "--weights", weights, "--vocab", vocab,
                           "--device", "cpu", "--threshold", "0.5", "--json", tmp_path / "cli.json", *SMALL)
    assert code == 0, err
    cli = json.loads((tmp_path / "cli.json").read_text())[0]
    assert cli["instances"] and "mask_rle" in cli["instances"][0]
    with live_server(make_service()) as client:
        form = client.post("/v1/detect", files={"image": ("astronaut.jpg", astronaut_jpg, "image/jpeg")})
        raw = client.post("/v1/detect", content=astronaut_jpg, headers={"Content-Type": "image/jpeg"})
        model = client.get("/v1/model").json()
    assert form.status_code == 200 and raw.status_code == 200, (form.text, raw.text)
    record, raw_record = form.json(), raw.json()
    assert cli.pop("file_name") == str(picture)  # the path as given to the CLI; the upload's file name here
    assert record.pop("file_name") == "astronaut.jpg" and raw_record.pop("file_name") == "upload"
    assert {k: v for k, v in record.items() if k not in EXTRAS} == cli
    assert {k: v for k, v in raw_record.items() if k not in EXTRAS} == cli
    assert record["model"] == model["name"] and record["vocab_sha256"] == model["vocabulary"]["vocab_id"]
    assert set(record["timing_ms"]) >= {"queue", "inference", "total", "batch_size"}
    assert record["timing_ms"]["total"] >= record["timing_ms"]["inference"] > 0


def test_threshold_and_masks_options(make_service, astronaut_jpg):
    """A higher threshold keeps exactly the detections above it; masks=none drops only the masks; form
    fields work as query parameters do."""
    with live_server(make_service(min_threshold=0.5)) as client:
        base = client.post("/v1/detect", files={"image": ("a.jpg", astronaut_jpg)}).json()["instances"]
        cut = sorted(i["score"] for i in base)[len(base) // 2]
        high = client.post(f"/v1/detect?threshold={cut}&masks=none", files={"image": ("a.jpg", astronaut_jpg)})
        form = client.post("/v1/detect", files={"image": ("a.jpg", astronaut_jpg)},
                           data={"threshold": str(cut), "masks": "none"})
    kept = [{k: v for k, v in i.items() if k != "mask_rle"} for i in base if i["score"] > cut]
    assert 0 < len(kept) < len(base)
    assert high.status_code == 200 and high.json()["instances"] == kept
    assert form.status_code == 200 and form.json()["instances"] == kept


def test_model_health_metrics_and_docs(make_service, r18_files):
    _, weights, _ = r18_files
    with live_server(make_service()) as client:
        health = client.get("/v1/health")
        model = client.get("/v1/model").json()
        docs = client.get("/docs")
        spec = client.get("/openapi.json").json()
        metrics = client.get("/v1/metrics").json()
        missing = client.get("/v1/nothing")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert model["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert model["architecture"] == "CustomRCNN" and model["device"] == "cpu"
    assert model["vocabulary"]["classes"] == 1203 and model["open_vocabulary"] is True
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    body = spec["paths"]["/v1/detect"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "image/jpeg", "image/png"} <= set(body)
    assert {"/v1/vocab", "/v1/health", "/v1/model", "/v1/metrics"} <= set(spec["paths"])
    assert metrics["responses"]["200"] >= 3 and metrics["batcher"]["max_batch"] == 8
    assert missing.status_code == 404 and "error" in missing.json()
