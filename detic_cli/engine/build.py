"""The engine's config reader: every config key the engine's jobs use is read here and handed on as built
objects or small typed settings (frozen dataclasses). Optimizer, LR schedule, clipping, AMP and the loop's
numbers; what the vocabulary checks need to know of the model (`ModelFacts`), the test-time inputs, periodic and
one-off evaluation (`EvalSettings`), what training reads besides the model (`TrainInputSettings`) and where it
starts from (`InitSettings`).

Facts from the original: SOLVER.USE_CUSTOM_SOLVER selects Detic's parameter groups (backbone /
custom multipliers; SGD or ADAMW), otherwise detectron2's (SGD only, norm and bias overrides).
Mixed precision: Detic's top-level FP16 or detectron2's SOLVER.AMP.ENABLED mean fp16 autocast with
loss scaling; the command line's `--amp fp16|bf16|off` overrides both. SOLVER.TRAIN_ITER >= 0 (or
`--max-iter`) stops the loop early while the schedule still spans SOLVER.MAX_ITER.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml
from torch import nn

from detic_cli.config import CfgNode
from detic_cli.engine.lr_schedule import LRMultiplier, WarmupCosineLR, WarmupMultiStepLR
from detic_cli.engine.optim import GradClip, custom_param_groups, default_param_groups, make_optimizer
from detic_cli.engine.predictor import InputSettings
from detic_cli.engine.trainer import AmpDtype
from detic_cli.errors import DeticError

if TYPE_CHECKING:
    from detic_cli.modeling.builders import ModelData

AMP_CHOICES = ("fp16", "bf16", "off")


def build_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    """SOLVER.OPTIMIZER over the parameter groups of the original recipe."""
    s = cfg.SOLVER
    if s.USE_CUSTOM_SOLVER:
        groups = custom_param_groups(model, base_lr=s.BASE_LR,
                                     weight_decay=None if s.OPTIMIZER == "ADAMW" else s.WEIGHT_DECAY,
                                     backbone_multiplier=s.BACKBONE_MULTIPLIER, custom_multiplier=s.CUSTOM_MULTIPLIER,
                                     custom_names=list(s.CUSTOM_MULTIPLIER_NAME))
    else:
        if s.OPTIMIZER != "SGD" or s.BACKBONE_MULTIPLIER != 1.0 or s.CLIP_GRADIENTS.CLIP_TYPE == "full_model":
            raise DeticError("SOLVER.OPTIMIZER ADAMW, SOLVER.BACKBONE_MULTIPLIER and CLIP_TYPE full_model need "
                             "SOLVER.USE_CUSTOM_SOLVER=True (as in the original train_net.py)")
        groups = default_param_groups(model, base_lr=s.BASE_LR, weight_decay=s.WEIGHT_DECAY,
                                      weight_decay_norm=s.WEIGHT_DECAY_NORM, bias_lr_factor=s.BIAS_LR_FACTOR,
                                      weight_decay_bias=s.WEIGHT_DECAY_BIAS)
    return make_optimizer(groups, name=s.OPTIMIZER, base_lr=s.BASE_LR, momentum=s.MOMENTUM, nesterov=s.NESTEROV,
                          weight_decay=s.WEIGHT_DECAY)


def build_lr_scheduler(cfg: CfgNode, optimizer: torch.optim.Optimizer) -> LRMultiplier:
    s = cfg.SOLVER
    warmup = {"warmup_factor": s.WARMUP_FACTOR, "warmup_iters": s.WARMUP_ITERS, "warmup_method": s.WARMUP_METHOD}
    if s.LR_SCHEDULER_NAME == "WarmupMultiStepLR":
        return WarmupMultiStepLR(optimizer, max_iter=s.MAX_ITER, steps=list(s.STEPS), gamma=s.GAMMA, **warmup)
    if s.LR_SCHEDULER_NAME == "WarmupCosineLR":
        return WarmupCosineLR(optimizer, max_iter=s.MAX_ITER, base_lr=s.BASE_LR, base_lr_end=s.BASE_LR_END, **warmup)
    raise DeticError(f"SOLVER.LR_SCHEDULER_NAME {s.LR_SCHEDULER_NAME!r}: expected WarmupMultiStepLR or WarmupCosineLR")


def build_grad_clip(cfg: CfgNode) -> GradClip | None:
    """detectron2's per-parameter clipping ("value" / "norm" with NORM_TYPE) or Detic's "full_model", which
    always clips the global 2-norm (its custom solver does not read NORM_TYPE)."""
    c = cfg.SOLVER.CLIP_GRADIENTS
    if not c.ENABLED:
        return None
    norm_type = 2.0 if c.CLIP_TYPE == "full_model" else float(c.NORM_TYPE)
    return GradClip(kind=c.CLIP_TYPE, value=float(c.CLIP_VALUE), norm_type=norm_type)


def amp_mode(cfg: CfgNode, flag: str | None, device_type: str) -> tuple[AmpDtype | None, str | None]:
    """(autocast dtype or None, a note for the user). `flag` (--amp) wins over FP16 / SOLVER.AMP.ENABLED;
    the config's fp16 is not applied on a CPU (fp32 there, with a note)."""
    if flag is not None:
        if flag not in AMP_CHOICES:
            raise DeticError(f"--amp {flag}: expected one of {', '.join(AMP_CHOICES)}")
        return (None if flag == "off" else flag), None  # type: ignore[return-value]
    if not (cfg.FP16 or cfg.SOLVER.AMP.ENABLED):
        return None, None
    if device_type != "cuda":
        return None, "the config asks for fp16 mixed precision, which is for CUDA: training in fp32 (--amp bf16 " \
                     "or --amp fp16 to force one)"
    return "fp16", None


@dataclass(frozen=True)
class TrainSettings:
    """The loop's numbers. stop_iter: where this run stops (<= max_iter); seed: None draws one."""

    max_iter: int
    stop_iter: int
    checkpoint_period: int
    eval_period: int
    find_unused_parameters: bool
    seed: int | None
    ims_per_batch: int
    clip: GradClip | None
    cudnn_benchmark: bool = False


def train_settings(cfg: CfgNode, *, max_iter_flag: int | None = None, world_size: int = 1) -> TrainSettings:
    s = cfg.SOLVER
    if s.IMS_PER_BATCH % world_size:
        raise DeticError(f"SOLVER.IMS_PER_BATCH {s.IMS_PER_BATCH} does not split over {world_size} processes; "
                         "set it to a multiple of the process count")
    stop = max_iter_flag if max_iter_flag is not None else (s.TRAIN_ITER if s.TRAIN_ITER >= 0 else s.MAX_ITER)
    return TrainSettings(max_iter=s.MAX_ITER, stop_iter=min(stop, s.MAX_ITER), checkpoint_period=s.CHECKPOINT_PERIOD,
                         eval_period=cfg.TEST.EVAL_PERIOD, find_unused_parameters=bool(cfg.FIND_UNUSED_PARAM),
                         seed=cfg.SEED if cfg.SEED >= 0 else None, ims_per_batch=s.IMS_PER_BATCH,
                         clip=build_grad_clip(cfg), cudnn_benchmark=bool(cfg.CUDNN_BENCHMARK))


def output_dir(cfg: CfgNode, config_path: Path) -> Path:
    """cfg.OUTPUT_DIR, its "/auto" part replaced by the config's stem (as the original train_net.py)."""
    text = str(cfg.OUTPUT_DIR)
    if "/auto" in text:
        text = text.replace("/auto", f"/{config_path.stem}")
    return Path(text)


def classifier_path(cfg: CfgNode) -> Path:
    """MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH with `datasets/...` under $DETIC_DATASETS (may not exist)."""
    from detic_cli.data.paths import dataset_path

    return dataset_path(cfg.MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH)


def draw_seed() -> int:
    """A fresh seed when cfg.SEED < 0 (recorded in the checkpoints, so --resume reuses it)."""
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF


OPEN_VOCABULARY_ARCH = "CustomRCNN"


@dataclass(frozen=True)
class ModelFacts:
    """arch: MODEL.META_ARCHITECTURE; zeroshot_dim: MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM; detr_num_classes:
    MODEL.DETR.NUM_CLASSES (None unless Deformable DETR); mask_on: MODEL.MASK_ON."""

    arch: str
    zeroshot_dim: int
    detr_num_classes: int | None
    mask_on: bool

    @property
    def open_vocabulary(self) -> bool:
        """The model has a zero-shot classifier whose vocabulary can change."""
        return self.arch == OPEN_VOCABULARY_ARCH


def model_facts(cfg: CfgNode) -> ModelFacts:
    arch = str(cfg.MODEL.META_ARCHITECTURE)
    return ModelFacts(arch=arch, zeroshot_dim=cfg.MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM,
                      detr_num_classes=cfg.MODEL.DETR.NUM_CLASSES if arch == "DeformableDetr" else None,
                      mask_on=bool(cfg.MODEL.MASK_ON))


def input_settings(cfg: CfgNode) -> InputSettings:
    """The test-time input sizes and channel order of INPUT.*."""
    return InputSettings(min_size=cfg.INPUT.MIN_SIZE_TEST, max_size=cfg.INPUT.MAX_SIZE_TEST,
                         channel_order=cfg.INPUT.FORMAT)


@dataclass(frozen=True)
class EvalSettings:
    """eval_period: TEST.EVAL_PERIOD; test_datasets: DATASETS.TEST; test_classifiers: MODEL.TEST_CLASSIFIERS
    when MODEL.RESET_CLS_TESTS is set, else None (each dataset's own built-in vocabulary)."""

    model: ModelFacts
    inputs: InputSettings
    eval_period: int
    test_datasets: tuple[str, ...]
    test_classifiers: tuple[str, ...] | None


def eval_settings(cfg: CfgNode) -> EvalSettings:
    classifiers = tuple(map(str, cfg.MODEL.TEST_CLASSIFIERS)) if cfg.MODEL.RESET_CLS_TESTS else None
    return EvalSettings(model=model_facts(cfg), inputs=input_settings(cfg), eval_period=cfg.TEST.EVAL_PERIOD,
                        test_datasets=tuple(cfg.DATASETS.TEST), test_classifiers=classifiers)


@dataclass(frozen=True)
class TrainInputSettings:
    """What training reads besides the model. classifier: ZEROSHOT_WEIGHT_PATH under the datasets root (None: no
    zero-shot classifier) with its expected (NUM_CLASSES, ZEROSHOT_WEIGHT_DIM) shape; side_files: (config key,
    path as the config writes it, is a folder) of the class frequencies and the ImageNet tar list and index."""

    classifier: Path | None
    num_classes: int
    zeroshot_dim: int
    train_datasets: tuple[str, ...]
    use_tar_dataset: bool
    side_files: tuple[tuple[str, str, bool], ...]


def needs_class_counts(cfg: CfgNode) -> bool:
    """Training draws classes by the frequencies of MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH: the R-CNN's federated loss,
    IGNORE_ZERO_CATS or dynamic classifier, or Deformable DETR's federated loss."""
    box, arch = cfg.MODEL.ROI_BOX_HEAD, cfg.MODEL.META_ARCHITECTURE
    if arch == "CustomRCNN":
        return bool(box.USE_FED_LOSS or box.IGNORE_ZERO_CATS or cfg.MODEL.DYNAMIC_CLASSIFIER)
    return arch == "DeformableDetr" and bool(cfg.MODEL.DETR.USE_FED_LOSS)


def training_model_data(cfg: CfgNode) -> ModelData:
    """What `build_model` needs to train this config: the (C,) class image counts of CAT_FREQ_PATH when a loss
    draws by them (read here; DeticError when the file is missing or malformed), CLIP's tokenizer for caption
    models (MODEL.WITH_CAPTION)."""
    from detic_cli.data.class_frequencies import class_image_counts
    from detic_cli.modeling.builders import ModelData

    counts = class_image_counts(str(cfg.MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH)) if needs_class_counts(cfg) else None
    tokenizer = None
    if cfg.MODEL.WITH_CAPTION:
        from detic_cli.clip.bpe import clip_tokenizer

        tokenizer = clip_tokenizer()
    return ModelData(class_counts=counts, tokenizer=tokenizer)


def _side_files(cfg: CfgNode) -> tuple[tuple[str, str, bool], ...]:
    box, loader = cfg.MODEL.ROI_BOX_HEAD, cfg.DATALOADER
    files: list[tuple[str, str, bool]] = []
    if needs_class_counts(cfg) and box.CAT_FREQ_PATH:
        files.append(("MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH", str(box.CAT_FREQ_PATH), False))
    if loader.USE_TAR_DATASET:
        files += [("DATALOADER.TARFILE_PATH", str(loader.TARFILE_PATH), False),
                  ("DATALOADER.TAR_INDEX_DIR", str(loader.TAR_INDEX_DIR), True)]
    return tuple(files)


def train_input_settings(cfg: CfgNode) -> TrainInputSettings:
    zeroshot = cfg.MODEL.META_ARCHITECTURE == "CustomRCNN" and cfg.MODEL.ROI_BOX_HEAD.USE_ZEROSHOT_CLS
    return TrainInputSettings(classifier=classifier_path(cfg) if zeroshot else None,
                              num_classes=cfg.MODEL.ROI_HEADS.NUM_CLASSES,
                              zeroshot_dim=cfg.MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM,
                              train_datasets=tuple(cfg.DATASETS.TRAIN),
                              use_tar_dataset=bool(cfg.DATALOADER.USE_TAR_DATASET), side_files=_side_files(cfg))


@dataclass(frozen=True)
class InitSettings:
    """weights: MODEL.WEIGHTS; timm_base_name: MODEL.TIMM.BASE_NAME when MODEL.TIMM.PRETRAINED asks for a timm
    backbone's ImageNet weights, else None."""

    weights: str
    timm_base_name: str | None


def init_settings(cfg: CfgNode) -> InitSettings:
    timm = bool(cfg.MODEL.TIMM.PRETRAINED) and "timm" in cfg.MODEL.BACKBONE.NAME
    return InitSettings(weights=str(cfg.MODEL.WEIGHTS), timm_base_name=cfg.MODEL.TIMM.BASE_NAME if timm else None)


def config_yaml(cfg: CfgNode) -> bytes:
    """The resolved config as YAML (a training run's config.yaml)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode()
