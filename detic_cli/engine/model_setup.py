"""What `detect`, `eval` and the Python API resolve before a Predictor exists: model files, the
detection config, the vocabulary, the autocast dtype. One implementation for the CLI and the API;
messages name the command-line option (`flag`) a user of either would recognise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
import torch

from detic_cli.config import CfgNode, load_config
from detic_cli.engine.build import ModelFacts, input_settings, model_facts
from detic_cli.engine.class_thresholds import ClassThresholds, parse_class_thresholds
from detic_cli.engine.predictor import Predictor
from detic_cli.errors import DeticError
from detic_cli.utils import resolve_device

if TYPE_CHECKING:
    from detic_cli.vocab.resolve import Vocabulary

VocabSpec = Union[str, Sequence[str], np.ndarray, "Vocabulary", None]

__all__ = ["INFERENCE_AMP", "LoadedPredictor", "classifier_for", "detect_config", "inference_amp", "input_settings",
           "load_predictor", "load_predictor_parts", "model_files", "predictor_from_config", "resolve_classifier",
           "vocabulary_for", "vocabulary_of"]

INFERENCE_AMP = {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def model_files(name: str | None, config: Path | None, weights: Path | None, *, mirror: str | None,
                flag: str, default: str | None = None) -> tuple[Path, Path]:
    """(config, weights): the pair given by --config/--weights, else the zoo model `name` (or `default`),
    pulled when missing. `flag` is the command's zoo option (--model, --row) for the messages."""
    if config is not None or weights is not None:
        if config is None or weights is None:
            raise DeticError(f"--config and --weights go together (or use {flag} NAME from `detic zoo list`)")
        if name is not None:
            raise DeticError(f"give either {flag} or --config/--weights, not both")
        return Path(config), Path(weights)
    if name is None and default is None:
        raise DeticError(f"which model? give {flag} NAME (see `detic zoo list`) or --config YAML --weights PTH")
    from detic_cli.zoo.resolve import resolve_model

    return resolve_model(name or default, mirror=mirror)


def detect_config(config: Path, overrides: list[str], threshold: float, pred_all_class: bool) -> CfgNode:
    """The demo's settings: SCORE_THRESH_TEST = threshold (in [0, 1]), one class per proposal unless
    `pred_all_class`, then the KEY=VALUE `overrides`."""
    if not 0.0 <= threshold <= 1.0:
        raise DeticError(f"--threshold {threshold}: must be between 0 and 1")
    demo = [f"MODEL.ROI_HEADS.SCORE_THRESH_TEST={threshold}",
            f"MODEL.ROI_HEADS.ONE_CLASS_PER_PROPOSAL={not pred_all_class}"]
    return load_config(config, demo + list(overrides))


def resolve_classifier(cfg: CfgNode, spec: str, *, vocab_file: Path | None, vocab_names: Path | None,
                       clip_checkpoint: Path | None, device: str, mirror: str | None) -> Vocabulary:
    """The Vocabulary of `--vocab SPEC` / `--vocab-file` for the model of `cfg` (see `classifier_for`)."""
    return classifier_for(model_facts(cfg), spec, vocab_file=vocab_file, vocab_names=vocab_names,
                          clip_checkpoint=clip_checkpoint, device=device, mirror=mirror)


def classifier_for(model: ModelFacts, spec: str, *, vocab_file: Path | None, vocab_names: Path | None,
                   clip_checkpoint: Path | None, device: str, mirror: str | None) -> Vocabulary:
    """The Vocabulary of `--vocab SPEC` / `--vocab-file`, checked against the model's embedding size.
    A closed-vocabulary model (Deformable DETR) given a built-in name gets only that vocabulary's class
    names (from the package, no download) to label its own learned classes."""
    from detic_cli.vocab.builtin import is_builtin
    from detic_cli.vocab.resolve import builtin_names, resolve_vocabulary

    if not model.open_vocabulary and not vocab_file and is_builtin(spec):
        return _closed_vocabulary(model, builtin_names(spec))
    voc = resolve_vocabulary(spec, names_file=str(vocab_names) if vocab_names else None,
                             vocab_file=str(vocab_file) if vocab_file else None,
                             clip_checkpoint=str(clip_checkpoint) if clip_checkpoint else None,
                             device=device, mirror=mirror)
    check_dimension(model, voc, str(vocab_file or spec))
    return voc


def check_dimension(model: ModelFacts, voc: Vocabulary, label: str) -> None:
    """An open-vocabulary model's classifier takes ZEROSHOT_WEIGHT_DIM-dimensional embeddings."""
    dim = model.zeroshot_dim
    if model.open_vocabulary and voc.embeddings is not None and voc.embeddings.shape[1] != dim:
        raise DeticError(f"--vocab {label}: embeddings have {voc.embeddings.shape[1]} "
                         f"dimensions, this model's classifier takes {dim} (CLIP ViT-B/32 text features)")


def _closed_vocabulary(model: ModelFacts, voc: Vocabulary) -> Vocabulary:
    """`voc` (names only) when it names every class of the closed model's learned classifier."""
    count = model.detr_num_classes
    if count is not None and len(voc.names) != count:
        vocab = voc.source.split(":", 1)[1]
        raise DeticError(f"--vocab {vocab}: {model.arch} has a fixed, learned {count}-class classifier that --vocab "
                         f"cannot change ({vocab} has {len(voc.names)} classes); use --vocab lvis or omit --vocab")
    return voc


def inference_amp(flag: str | None) -> torch.dtype | None:
    """The autocast dtype of an --amp word (off, fp16, bf16; None means off) for detect and eval."""
    if flag is None:
        return None
    if flag not in INFERENCE_AMP:
        raise DeticError(f"--amp {flag}: expected one of {', '.join(INFERENCE_AMP)}")
    return INFERENCE_AMP[flag]


def vocabulary_of(cfg: CfgNode, vocab: VocabSpec, *, names: Sequence[str] | None = None,
                  vocab_names: Path | None = None, vocab_file: Path | None = None,
                  clip_checkpoint: Path | None = None, device: str = "cpu",
                  mirror: str | None = None) -> Vocabulary:
    """The vocabulary of any spec for the model of `cfg` (see `vocabulary_for`)."""
    return vocabulary_for(model_facts(cfg), vocab, names=names, vocab_names=vocab_names, vocab_file=vocab_file,
                          clip_checkpoint=clip_checkpoint, device=device, mirror=mirror)


def _vocab_word(vocab: str | None, vocab_file: Path | None) -> str:
    """The `--vocab` word a string-or-None spec stands for: None is lvis, or nothing beside `vocab_file`."""
    return vocab if vocab is not None else ("" if vocab_file else "lvis")


def vocabulary_for(model: ModelFacts, vocab: VocabSpec, *, names: Sequence[str] | None = None,
                   vocab_names: Path | None = None, vocab_file: Path | None = None,
                   clip_checkpoint: Path | None = None, device: str = "cpu",
                   mirror: str | None = None) -> Vocabulary:
    """A vocabulary from any spec: a `--vocab` word (built-in name, "a,b", a .npy path; None is lvis, or
    `vocab_file`'s names), a list of class names (CLIP-encoded, cached), a (C, D) array (labelled by
    `names`, else class_N) or a Vocabulary; checked against the model's classifier. `vocab_names`: the
    names file of a .npy path (--vocab-names)."""
    from detic_cli.vocab.resolve import Vocabulary, vocabulary_from_names

    if vocab is None or isinstance(vocab, str):
        spec = _vocab_word(vocab, vocab_file)
        return classifier_for(model, spec, vocab_file=vocab_file, vocab_names=vocab_names,
                              clip_checkpoint=clip_checkpoint, device=device, mirror=mirror)
    if isinstance(vocab, Vocabulary):
        voc = vocab
    elif isinstance(vocab, np.ndarray):
        voc = Vocabulary(_array_names(vocab, names), vocab.astype(np.float32), "array")
    else:
        voc = vocabulary_from_names(list(vocab), clip_checkpoint=str(clip_checkpoint) if clip_checkpoint else None,
                                    device=device)
    if not model.open_vocabulary and voc.embeddings is not None:
        raise DeticError(f"{model.arch} has a fixed, learned classifier: its vocabulary cannot change")
    check_dimension(model, voc, voc.source)
    return voc


def _array_names(array: np.ndarray, names: Sequence[str] | None) -> list[str]:
    if array.ndim != 2 or array.shape[0] == 0 or not np.issubdtype(array.dtype, np.floating) \
            or not np.isfinite(array).all():
        raise DeticError(f"vocabulary array: expected finite (classes x dim) floats, got {array.dtype} "
                         f"{tuple(array.shape)}")
    if names is None:
        return [f"class_{i}" for i in range(len(array))]
    if isinstance(names, str) or len(names) != len(array):
        raise DeticError(f"vocabulary array: give one name per row ({len(array)} rows)")
    return [str(n) for n in names]


def predictor_from_config(cfg: CfgNode, *, weights: str | Path | Mapping[str, torch.Tensor], device: torch.device,
                          embeddings: np.ndarray | None = None, class_names: list[str] | None = None,
                          amp: torch.dtype | None = None, region_embeddings: bool = False,
                          input_bucket: int = 0) -> Predictor:
    """A Predictor over the model of `cfg` with `weights` loaded: an official-layout checkpoint file or a
    state dict in memory (see Predictor for the other arguments)."""
    from detic_cli.checkpoint.load import load_checkpoint, load_state_dict
    from detic_cli.modeling.builders import build_model

    model = build_model(cfg)
    if isinstance(weights, Mapping):
        load_state_dict(model, dict(weights), "the in-memory weights")
    else:
        load_checkpoint(model, weights)
    return Predictor(model, inputs=input_settings(cfg), device=device, embeddings=embeddings,
                     class_names=class_names, amp=amp, region_embeddings=region_embeddings, input_bucket=input_bucket)


@dataclass(frozen=True)
class LoadedPredictor:
    """What `load_predictor_parts` gives: the predictor, the per-class thresholds over it, and the config it
    was built from (the vocabulary checks of a later `set_vocabulary` need it)."""

    predictor: Predictor
    thresholds: ClassThresholds
    cfg: CfgNode


def load_predictor(**kwargs) -> tuple[Predictor, ClassThresholds]:
    """(predictor, thresholds) of `load_predictor_parts(**kwargs)`."""
    parts = load_predictor_parts(**kwargs)
    return parts.predictor, parts.thresholds


def load_predictor_parts(*, model: str | None = None, config: Path | None = None, weights: Path | None = None,
                         vocab: VocabSpec = None, names: Sequence[str] | None = None, vocab_names: Path | None = None,
                         vocab_file: Path | None = None,
                         clip_checkpoint: Path | None = None, threshold: float = 0.5,
                         class_thresholds: str | Mapping[str, float] | None = None, pred_all_class: bool = False,
                         overrides: Sequence[str] = (), device: str = "auto", amp: str | None = None,
                         embeddings: bool = False, mirror: str | None = None,
                         input_bucket: int = 0) -> LoadedPredictor:
    """The Predictor `detic detect` and `Detector` run (model files pulled when missing, config with the
    demo's settings at the lowest threshold, vocabulary resolved), and the per-class thresholds over it.
    `input_bucket` > 0 pads every network input to a multiple of that many pixels (static shapes)."""
    from detic_cli.zoo.catalog import DEFAULT_MODEL

    thresholds = parse_class_thresholds(class_thresholds, threshold)
    torch_device, amp_dtype = resolve_device(device), inference_amp(amp)
    if vocab is None or isinstance(vocab, str):  # a bad --vocab fails before model files are pulled
        from detic_cli.vocab.resolve import check_spec

        check_spec(_vocab_word(vocab, vocab_file), vocab_file=vocab_file)
    config_path, weights_path = model_files(model, config, weights, mirror=mirror, flag="--model",
                                            default=DEFAULT_MODEL)
    cfg = detect_config(config_path, list(overrides), thresholds.model_threshold, pred_all_class)
    facts = model_facts(cfg)
    if embeddings and not facts.open_vocabulary:
        raise DeticError(f"--embeddings: {facts.arch} has no zero-shot classifier, so its "
                         "detections have no classifier-space embeddings")
    voc = vocabulary_for(facts, vocab, names=names, vocab_names=vocab_names, vocab_file=vocab_file,
                        clip_checkpoint=clip_checkpoint, device=str(torch_device), mirror=mirror)
    predictor = predictor_from_config(cfg, weights=weights_path, device=torch_device, embeddings=voc.embeddings,
                                      class_names=voc.names, amp=amp_dtype, region_embeddings=embeddings,
                                      input_bucket=input_bucket)
    thresholds.check(predictor.class_names)
    return LoadedPredictor(predictor, thresholds, cfg)
