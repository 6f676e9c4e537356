"""What `detic train` checks before it builds a model: the classifier's class embeddings, the training
datasets and the other dataset-tree files the recipe reads (class frequencies, ImageNet tar index).

Each missing file is one DeticError line naming the config key, the expected path and the command that
makes it (`detic data prepare TARGET`, `detic zoo pull --vocab NAME`, `detic build-vocab ...`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detic_cli.config import CfgNode
from detic_cli.data.catalog import ENV_VAR
from detic_cli.data.paths import dataset_path
from detic_cli.engine.build import TrainInputSettings, train_input_settings
from detic_cli.errors import DeticError

LVIS_21K_VOCAB = "lvis-21k_clip_a+cname.npy"  # the 21K models' classifier, not published by the original
_DATASETS_PREFIX = "datasets/"


def _cached_builtin(path: Path) -> tuple[Path | None, str | None]:
    """(the zoo cache's copy of a built-in vocabulary file named like `path`, that vocabulary's name)."""
    from detic_cli.vocab.builtin import BUILTINS
    from detic_cli.zoo.cache import cached_path
    from detic_cli.zoo.download import is_cached

    for name, voc in BUILTINS.items():
        if voc.embeddings.filename == path.name:
            return (cached_path(voc.embeddings) if is_cached(voc.embeddings) else None), name
    return None, None


def _vocab_hint(path: Path, builtin: str | None) -> str:
    """How to get a missing ZEROSHOT_WEIGHT_PATH file."""
    if builtin:
        return f"run `detic zoo pull --vocab {builtin}`"
    if path.name == LVIS_21K_VOCAB:
        from detic_cli.data.prepare.imagenet_lvis import FULL_JSON

        ann = dataset_path(_DATASETS_PREFIX + FULL_JSON)
        return f"make it with `detic data prepare imagenet-lvis`, then `detic build-vocab --ann {ann} --out {path}`"
    return "copy it from the original Detic datasets/metadata/ folder"


def load_classifier(cfg: CfgNode) -> np.ndarray | None:
    """The training class embeddings of the config (see `classifier_table`)."""
    return classifier_table(train_input_settings(cfg))


def classifier_table(settings: TrainInputSettings) -> np.ndarray | None:
    """The (C, D) float32 training class embeddings of MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH (None: no
    zero-shot classifier). A built-in vocabulary file pulled by `detic zoo pull --vocab` stands in for a missing
    one; a missing file or a shape other than (NUM_CLASSES, ZEROSHOT_WEIGHT_DIM) is a DeticError."""
    path = settings.classifier
    if path is None:
        return None
    if not path.is_file():
        cached, vocab = _cached_builtin(path)
        if cached is None:
            raise DeticError(f"MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH: {path} not found; {_vocab_hint(path, vocab)}, "
                             f"or put the file there ({ENV_VAR} sets the datasets root)")
        path = cached
    try:
        table = np.load(path).astype(np.float32)
    except (OSError, ValueError) as exc:
        raise DeticError(f"{path}: not a readable .npy array ({type(exc).__name__})") from exc
    dim, classes = settings.zeroshot_dim, settings.num_classes
    if table.ndim != 2 or table.shape[1] != dim or table.shape[0] != classes:
        raise DeticError(f"{path}: shape {table.shape}, expected ({classes}, {dim}) = (MODEL.ROI_HEADS.NUM_CLASSES, "
                         "MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM)")
    return table


def side_files(cfg: CfgNode) -> list[tuple[str, str, bool]]:
    """(config key, path as the config writes it, is a folder) of the files training reads besides DATASETS.TRAIN:
    the class frequencies of the federated loss / IGNORE_ZERO_CATS, and the ImageNet tar list and index."""
    return list(train_input_settings(cfg).side_files)


def _check_side_files(settings: TrainInputSettings) -> None:
    from detic_cli.data.prepare.registry import target_making

    for key, written, folder in settings.side_files:
        path = dataset_path(written)
        present = path.is_dir() if folder else path.is_file()
        if present:
            continue
        target = target_making(written[len(_DATASETS_PREFIX):]) if written.startswith(_DATASETS_PREFIX) else None
        how = f"run `detic data prepare {target.name}` to make it" if target is not None else "set the key to the file"
        if key.startswith("DATALOADER.TAR"):
            how += " from the ImageNet-21K tar files, or set DATALOADER.USE_TAR_DATASET=False for class folders"
        raise DeticError(f"{key}: {path} not found ({how}; {ENV_VAR} sets the datasets root)")


def check_datasets(cfg: CfgNode) -> None:
    """Fail before building the model when a training dataset's files or a side file are missing."""
    check_train_data(train_input_settings(cfg))


def check_train_data(settings: TrainInputSettings) -> None:
    """`check_datasets` on settings already read from the config."""
    from detic_cli.data.catalog import resolve_train_dataset

    if not settings.train_datasets:
        raise DeticError("DATASETS.TRAIN is empty: name the training datasets")
    for name in settings.train_datasets:
        resolve_train_dataset(name, check_images=not settings.use_tar_dataset)
    _check_side_files(settings)


def fill_text_encoder(model, missing: list[str] | None, clip_checkpoint: str | None) -> str | None:
    """Caption models (MODEL.WITH_CAPTION): load CLIP's pretrained text tower into `model.text_encoder` when
    the initial weights have none (`missing` lists keys left to random init; None = no initial weights), as
    the original builds it pretrained. Returns a line for the log, or None when nothing was needed."""
    encoder = getattr(model, "text_encoder", None)
    if encoder is None or (missing is not None and not any(k.startswith("text_encoder.") for k in missing)):
        return None
    from detic_cli.clip.encoder import EncoderSpec, load_encoder

    tower = load_encoder(EncoderSpec(clip_checkpoint=clip_checkpoint))
    try:
        encoder.load_state_dict(tower.state_dict())
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise DeticError(f"--clip-checkpoint {clip_checkpoint}: not a CLIP ViT-B/32 text tower ({first})") from None
    return f"text_encoder: pretrained CLIP text tower from {clip_checkpoint or 'open_clip ViT-B-32 (openai)'}"
