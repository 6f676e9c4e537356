"""The model, optimizer, LR schedule and gradient clipping of a training run, built from the config.

`detic train` and the training-parity tests build their parts here, so what the tests prove (the
recipe's parameter groups, schedule and clipping, the classifier set from ZEROSHOT_WEIGHT_PATH) is
what the command trains with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from detic_cli.config import CfgNode
from detic_cli.engine.build import build_grad_clip, build_lr_scheduler, build_optimizer, training_model_data
from detic_cli.engine.lr_schedule import LRMultiplier
from detic_cli.engine.optim import GradClip


@dataclass
class TrainParts:
    """What the training loop runs on: the model in training mode on its device, the optimizer over its
    trainable parameters (the recipe's groups), the schedule at iteration 0, and the clipping (None: off)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: LRMultiplier
    clip: GradClip | None


def build_train_parts(cfg: CfgNode, *, device: torch.device, embeddings: np.ndarray | None) -> TrainParts:
    """Build the config's model on `device` with the (C, D) float32 class `embeddings` as its classifier
    (None: a model without a zero-shot classifier) and the class frequencies and tokenizer its losses need
    (`training_model_data`), then the optimizer, schedule and clipping of SOLVER.*.
    The weights are the model's random init: load the initial checkpoint into `parts.model` afterwards
    (loading changes no parameter object, so the optimizer keeps tracking them)."""
    from detic_cli.modeling.builders import build_model

    model = build_model(cfg, training_model_data(cfg)).to(device)
    if embeddings is not None:
        model.set_vocabulary(torch.from_numpy(np.asarray(embeddings, dtype=np.float32)))
    model.train()
    optimizer = build_optimizer(cfg, model)
    return TrainParts(model=model, optimizer=optimizer, scheduler=build_lr_scheduler(cfg, optimizer),
                      clip=build_grad_clip(cfg))
