"""The Service of `detic serve` from its options: model files, config, default vocabulary and Predictor,
resolved as `detic detect` resolves them (the only serve module that reads the config)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from detic_cli.engine.model_setup import detect_config, load_predictor, model_files, vocabulary_of
from detic_cli.serve.limits import Limits
from detic_cli.serve.runner import ModelRunner
from detic_cli.serve.service import ModelInfo, Service
from detic_cli.serve.vocab_cache import VocabCache, served
from detic_cli.utils import remembered_sha256, resolve_device
from detic_cli.zoo.catalog import DEFAULT_MODEL


def build_service(*, model: str | None = None, config: Path | None = None, weights: Path | None = None,
                  vocab: str | None = None, overrides: Sequence[str] = (), clip_checkpoint: Path | None = None,
                  device: str = "auto", amp: str = "off", mirror: str | None = None, limits: Limits | None = None,
                  max_batch: int = 8, max_wait_ms: float = 10.0, max_queue: int = 64) -> Service:
    """The Service: model files, config, default vocabulary and Predictor as `detic detect` resolves them (the
    model's score cut at the lowest threshold a request may ask for)."""
    limits = limits or Limits()
    overrides = list(overrides)
    config_path, weights_path = model_files(model, config, weights, mirror=mirror, flag="--model",
                                            default=DEFAULT_MODEL)
    cfg = detect_config(config_path, overrides, limits.min_threshold, False)
    torch_device = str(resolve_device(device))
    voc = vocabulary_of(cfg, vocab, clip_checkpoint=clip_checkpoint, device=torch_device, mirror=mirror)
    predictor, _ = load_predictor(config=config_path, weights=weights_path, vocab=voc,
                                  threshold=limits.min_threshold, overrides=overrides, device=device, amp=amp,
                                  mirror=mirror)
    open_vocab = cfg.MODEL.META_ARCHITECTURE == "CustomRCNN"
    vocabs = VocabCache(voc, dim=cfg.MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM if open_vocab else None,
                        clip_checkpoint=str(clip_checkpoint) if clip_checkpoint else None, device=torch_device,
                        mirror=mirror, max_classes=limits.max_classes)
    info = ModelInfo(name=model or config_path.stem, config=str(config_path), weights=str(weights_path),
                     weights_sha256=remembered_sha256(weights_path), architecture=cfg.MODEL.META_ARCHITECTURE,
                     device=torch_device)
    return Service(ModelRunner(predictor, served(voc)), vocabs, limits, info, max_batch=max_batch,
                   max_wait_ms=max_wait_ms, max_queue=max_queue)
