"""`detic_cli.evaluate` on a tiny synthetic COCO dataset: the metrics and files of `detic eval`, resumable."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import detic_cli
from detic_cli import DeticError
from detic_cli.data.synthetic import make_detection_dataset, synthetic_categories

R18 = "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml"
FAST = ("INPUT.MIN_SIZE_TEST=96", "INPUT.MAX_SIZE_TEST=128", "TEST.DETECTIONS_PER_IMAGE=30",
        "MODEL.CENTERNET.PRE_NMS_TOPK_TEST=200", "MODEL.CENTERNET.POST_NMS_TOPK_TEST=32")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """(dataset spec, (5, 512) vocabulary array, the same array as .npy) of 3 synthetic COCO images."""
    root = tmp_path_factory.mktemp("shapes")
    annotation = make_detection_dataset(root, num_images=3, size=128, seed=0, style="coco")
    table = np.random.default_rng(0).standard_normal((len(synthetic_categories()), 512)).astype(np.float32)
    np.save(root / "vocab.npy", table)
    return f"coco:{annotation}:{root / 'images'}", table, root / "vocab.npy"


@pytest.fixture(scope="module")
def model(shared_dir, parity_checkpoint):
    return {"config": shared_dir / "detic-reference/configs" / R18, "weights": parity_checkpoint(R18),
            "device": "cpu", "overrides": FAST}


@pytest.fixture(scope="module")
def whole(shapes, model, tmp_path_factory):
    """(metrics, output folder) of one API run over the whole dataset, vocabulary given as an array."""
    spec, table, _ = shapes
    out = tmp_path_factory.mktemp("api_eval")
    names = [c["name"] for c in synthetic_categories()]
    return detic_cli.evaluate(spec, vocab=table, names=names, output_dir=out, **model), out


def _as_json(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: None if math.isnan(v) else v for k, v in metrics.items()}


def test_evaluate_gives_the_metrics_and_results_of_detic_eval(whole, shapes, model, run_cli, tmp_path):
    metrics, out = whole
    spec, _, npy = shapes
    assert {"bbox/AP", "bbox/AP50", "bbox/AR@100", "segm/AP"} <= set(metrics)
    assert all(isinstance(v, float) for v in metrics.values())
    assert json.loads((out / "metrics.json").read_text()) == _as_json(metrics)
    code, stdout, err = run_cli("eval", "--config", model["config"], "--weights", model["weights"], "--dataset", spec,
                                "--vocab", npy, "--device", "cpu", "--output-dir", tmp_path, *FAST)
    assert code == 0, err
    assert "bbox/AP" in stdout and "3 image(s)" in err
    assert json.loads((tmp_path / "metrics.json").read_text()) == _as_json(metrics)
    results = json.loads((out / "results.json").read_text())
    assert results and results == json.loads((tmp_path / "results.json").read_text())
    assert {r["category_id"] for r in results} <= {c["id"] for c in synthetic_categories()}


def test_evaluate_goes_on_where_it_stopped(whole, shapes, model, tmp_path):
    spec, table, _ = shapes
    assert detic_cli.evaluate(spec, vocab=table, output_dir=tmp_path, max_images=1, **model) == {}
    assert len(list((tmp_path / "shards").glob("*.json"))) == 1 and not (tmp_path / "metrics.json").exists()
    metrics = detic_cli.evaluate(spec, vocab=table, output_dir=tmp_path, **model)
    assert _as_json(metrics) == _as_json(whole[0])
    assert (tmp_path / "results.json").read_text() == (whole[1] / "results.json").read_text()
    with pytest.raises(DeticError, match="another run"):  # the fingerprint holds a digest of the array
        detic_cli.evaluate(spec, vocab=table * 2, output_dir=tmp_path, **model)


def test_evaluate_refuses_bad_input_in_one_line(shapes, model, tmp_path):
    spec, table, _ = shapes
    with pytest.raises(DeticError, match="4 classes, but --dataset .* has 5 categories"):
        detic_cli.evaluate(spec, vocab=table[:4], output_dir=tmp_path, **model)
    with pytest.raises(DeticError, match="give --vocab"):
        detic_cli.evaluate(spec, output_dir=tmp_path, **model)
    with pytest.raises(DeticError, match="at least 1"):
        detic_cli.evaluate(spec, vocab=table, output_dir=tmp_path, batch_size=0, **model)
    with pytest.raises(DeticError, match="--config and --weights go together"):
        detic_cli.evaluate(spec, vocab=table, config=model["config"], output_dir=tmp_path)
