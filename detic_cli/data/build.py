"""`build_train_loader(cfg)`: the one place the training data pipeline reads the config.

DATASETS.TRAIN names -> records (catalog + datasets), a sampler (DATALOADER.SAMPLER_TRAIN),
batches grouped by aspect ratio and, for multi-dataset training, by dataset (each with its batch
size), and a torch DataLoader whose workers map records to the training contract's batch elements.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from detic_cli.data.augment import (
    Augmentation,
    EfficientDetResizeCrop,
    RandomCrop,
    RandomFlip,
    ResizeShortestEdge,
    detr_augmentations,
)
from detic_cli.data.catalog import resolve_train_dataset
from detic_cli.data.datasets import LoadedDataset, Record, drop_images_without_boxes, load_dataset
from detic_cli.data.mapper import MappedRecords, TrainMapper
from detic_cli.data.paths import dataset_path
from detic_cli.data.samplers import (
    GroupedBatchSampler,
    MultiDatasetSampler,
    RepeatFactorTrainingSampler,
    StreamSampler,
    TrainingSampler,
    group_ids,
    repeat_factors_from_category_frequency,
)
from detic_cli.errors import DeticError


class TrainLoader:
    """An endless iterator of per-process batches (lists of batch-element dicts).

    `datasets[s]` holds the class names of DATASETS.TRAIN[s]; worker processes start at the first `next()`.
    """

    def __init__(self, loader: DataLoader, datasets: list[LoadedDataset], num_records: int) -> None:
        self.loader, self.datasets, self.num_records = loader, datasets, num_records
        self._it: Any = None

    def __iter__(self) -> TrainLoader:
        return self

    def __next__(self) -> list[dict[str, Any]]:
        if self._it is None:
            self._it = iter(self.loader)
        try:
            return next(self._it)
        except DeticError as exc:  # from a worker process: the message carries the worker's traceback
            raise DeticError(worker_error_line(str(exc))) from exc


def worker_error_line(message: str) -> str:
    """The one-line message of an error re-raised from a DataLoader worker ("Caught DeticError in DataLoader
    worker process 0.\nOriginal Traceback ...\ndetic_cli.errors.DeticError: MESSAGE"); other messages unchanged."""
    lines = [line for line in message.splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].startswith("Caught "):
        return message
    last = lines[-1]
    head, sep, tail = last.partition(": ")
    return tail if sep and head.endswith("Error") else last


def build_train_loader(cfg, *, rank: int = 0, world_size: int = 1, start_iter: int = 0, seed: int = 0) -> TrainLoader:
    """Batches for process `rank` of `world_size`, deterministic given (seed, rank, world_size);
    the first `start_iter` batches are skipped without reading any image."""
    ann_types = dataset_ann_types(cfg)
    records, datasets = train_records(cfg, ann_types)
    sampler = build_sampler(cfg, records, ann_types, seed=seed, rank=rank, world_size=world_size)
    groups, batch_sizes = batch_groups(cfg, records, ann_types, world_size)
    batches = GroupedBatchSampler(sampler, groups=groups, batch_sizes=batch_sizes, start_batch=start_iter)
    mapper = build_train_mapper(cfg, ann_types, records)
    loader = DataLoader(MappedRecords(records, mapper, seed=seed), batch_sampler=batches,
                        num_workers=int(cfg.DATALOADER.NUM_WORKERS), collate_fn=_as_list,
                        worker_init_fn=_one_thread, generator=torch.Generator().manual_seed(seed % (1 << 63)))
    return TrainLoader(loader, datasets, len(records))


def build_train_mapper(cfg, ann_types: list[str], records: list[Record]) -> TrainMapper:
    """The record -> batch element mapper of training: per dataset source its INPUT.CUSTOM_AUG recipe,
    INPUT.FORMAT channels, masks (MODEL.MASK_ON) in INPUT.MASK_FORMAT, tar images where records need them."""
    return TrainMapper(augmentations=[train_augmentations(cfg, s) for s in range(len(ann_types))],
                       image_format=cfg.INPUT.FORMAT, ann_types=ann_types, with_masks=bool(cfg.MODEL.MASK_ON),
                       mask_format=str(cfg.INPUT.MASK_FORMAT), read_tar_image=_tar_reader(cfg, records))


def _as_list(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return batch


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)


def dataset_ann_types(cfg) -> list[str]:
    """Supervision per training dataset: DATALOADER.DATASET_ANN with WITH_IMAGE_LABELS, else all "box"."""
    names = list(cfg.DATASETS.TRAIN)
    if not names:
        raise DeticError("DATASETS.TRAIN is empty: name the training datasets, e.g. "
                         "DATASETS.TRAIN='(\"lvis_v1_train\",)'")
    if not cfg.WITH_IMAGE_LABELS:
        return ["box"] * len(names)
    anns = list(cfg.DATALOADER.DATASET_ANN)
    if len(anns) < len(names):
        raise DeticError(f"DATALOADER.DATASET_ANN has {len(anns)} entries for {len(names)} training datasets")
    return anns[:len(names)]


def train_records(cfg, ann_types: list[str]) -> tuple[list[Record], list[LoadedDataset]]:
    """All records, dataset by dataset (dataset_source = position in DATASETS.TRAIN)."""
    records: list[Record] = []
    loaded = []
    for source, name in enumerate(cfg.DATASETS.TRAIN):
        dataset = resolve_train_dataset(name, check_images=not cfg.DATALOADER.USE_TAR_DATASET)
        data = load_dataset(dataset, with_masks=bool(cfg.MODEL.MASK_ON), dataset_source=source)
        recs = data.records
        if cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS and ann_types[source] == "box":
            recs = drop_images_without_boxes(recs)
        if not recs:
            raise DeticError(f"training dataset {name} has no usable images ({dataset.annotation})")
        _check_first_image(name, recs, dataset.image_root)
        _check_class_count(cfg, name, len(data.class_names))
        records.extend(recs)
        loaded.append(data)
    return records, loaded


def _check_first_image(name: str, records: list[Record], image_root: Path) -> None:
    """A one-line error before training when the images are not where the json says (not yet downloaded)."""
    first = next((r["file_name"] for r in records if r["file_name"]), None)
    if first is not None and not Path(first).is_file():
        raise DeticError(f"training dataset {name}: image {first} not found; put the dataset's images under "
                         f"{image_root} (layout as in the original datasets/README.md)")


def _check_class_count(cfg, name: str, count: int) -> None:
    """Contiguous class indices must fit the classifier: more json categories than NUM_CLASSES is an error
    (fewer is allowed: the 22K recipes train LVIS boxes, ids 1..1203, with a 22047-class classifier)."""
    limit = int(cfg.MODEL.ROI_HEADS.NUM_CLASSES)
    if cfg.MODEL.META_ARCHITECTURE == "CustomRCNN" and count > limit:
        raise DeticError(f"training dataset {name} has {count} categories, more than MODEL.ROI_HEADS.NUM_CLASSES="
                         f"{limit}: set it to {count}, with a ZEROSHOT_WEIGHT_PATH of {count} rows (one per category, "
                         "in category-id order)")


def build_sampler(cfg, records: list[Record], ann_types: list[str], *, seed: int, rank: int,
                  world_size: int) -> StreamSampler:
    dl = cfg.DATALOADER
    kind = dl.SAMPLER_TRAIN
    if kind == "TrainingSampler":
        return TrainingSampler(len(records), seed=seed, rank=rank, world_size=world_size)
    if kind == "RepeatFactorTrainingSampler":
        factors = repeat_factors_from_category_frequency([_categories(r, "box") for r in records],
                                                         dl.REPEAT_THRESHOLD)
        return RepeatFactorTrainingSampler(factors, seed=seed, rank=rank, world_size=world_size)
    if kind == "MultiDatasetSampler":
        n = len(ann_types)
        if len(dl.DATASET_RATIO) < n or len(dl.USE_RFS) < n:
            raise DeticError(f"DATALOADER.DATASET_RATIO and USE_RFS need one entry per training dataset ({n})")
        factors = []
        for s in range(n):
            mine = [r for r in records if r["dataset_source"] == s]
            factors.append(repeat_factors_from_category_frequency([_categories(r, ann_types[s]) for r in mine],
                                                                  dl.REPEAT_THRESHOLD) if dl.USE_RFS[s] else None)
        return MultiDatasetSampler([r["dataset_source"] for r in records], dataset_ratio=list(dl.DATASET_RATIO[:n]),
                                   repeat_factors=factors, seed=seed, rank=rank, world_size=world_size)
    raise DeticError(f"DATALOADER.SAMPLER_TRAIN={kind}: use TrainingSampler, RepeatFactorTrainingSampler "
                     "or MultiDatasetSampler")


def _categories(record: Record, ann_type: str) -> list[int]:
    """Box data: the classes of its annotations; image/caption data: its pos_category_ids."""
    if ann_type == "box":
        return record["classes"].tolist()
    return list(record.get("pos_category_ids", []))


def batch_groups(cfg, records: list[Record], ann_types: list[str], world_size: int) -> tuple[list[int], list[int]]:
    """Group id per record and batch size per group (per process)."""
    dl, total = cfg.DATALOADER, int(cfg.SOLVER.IMS_PER_BATCH)
    if total <= 0 or total % world_size:
        raise DeticError(f"SOLVER.IMS_PER_BATCH={total} must be a positive multiple of the {world_size} processes")
    multi = dl.SAMPLER_TRAIN == "MultiDatasetSampler" and dl.MULTI_DATASET_GROUPING
    by_source = multi or len(set(ann_types)) > 1  # a batch never mixes supervision types
    by_aspect = multi or bool(dl.ASPECT_RATIO_GROUPING)
    n = len(ann_types)
    if dl.USE_DIFF_BS_SIZE and by_source:
        if len(dl.DATASET_BS) < n:
            raise DeticError(f"DATALOADER.DATASET_BS needs one batch size per training dataset ({n})")
        sizes = [int(dl.DATASET_BS[s]) for s in range(n) for _ in range(2)]
    else:
        sizes = [total // world_size] * (2 * n if by_source else 2)
    groups = group_ids([r["dataset_source"] for r in records], [r["height"] for r in records],
                       [r["width"] for r in records], by_source=by_source, by_aspect=by_aspect)
    return groups, sizes


def train_augmentations(cfg, source: int) -> list[Augmentation]:
    """INPUT.CUSTOM_AUG recipe for dataset `source` (per-dataset sizes with DATALOADER.USE_DIFF_BS_SIZE)."""
    inp, dl = cfg.INPUT, cfg.DATALOADER
    per_source = bool(dl.USE_DIFF_BS_SIZE)
    if inp.CUSTOM_AUG == "EfficientDetResizeCrop":
        size = _pick(dl.DATASET_INPUT_SIZE, source, "DATASET_INPUT_SIZE") if per_source else inp.TRAIN_SIZE
        scale = _pick(dl.DATASET_INPUT_SCALE, source, "DATASET_INPUT_SCALE") if per_source else inp.SCALE_RANGE
        return [EfficientDetResizeCrop(size, scale), RandomFlip()]
    if inp.CUSTOM_AUG == "ResizeShortestEdge":
        mins = _pick(dl.DATASET_MIN_SIZES, source, "DATASET_MIN_SIZES") if per_source else inp.MIN_SIZE_TRAIN
        maxs = _pick(dl.DATASET_MAX_SIZES, source, "DATASET_MAX_SIZES") if per_source else inp.MAX_SIZE_TRAIN
        return [ResizeShortestEdge(mins, maxs, inp.MIN_SIZE_TRAIN_SAMPLING), RandomFlip()]
    crop = RandomCrop(inp.CROP.TYPE, inp.CROP.SIZE) if inp.CROP.ENABLED else None
    if inp.CUSTOM_AUG == "DETR":
        return detr_augmentations(inp.MIN_SIZE_TRAIN, inp.MAX_SIZE_TRAIN, inp.MIN_SIZE_TRAIN_SAMPLING, crop)
    if inp.CUSTOM_AUG != "":
        raise DeticError(f"INPUT.CUSTOM_AUG={inp.CUSTOM_AUG}: use EfficientDetResizeCrop, ResizeShortestEdge, "
                         "DETR or '' (detectron2's default)")
    augs: list[Augmentation] = [crop] if crop is not None else []
    augs.append(ResizeShortestEdge(inp.MIN_SIZE_TRAIN, inp.MAX_SIZE_TRAIN, inp.MIN_SIZE_TRAIN_SAMPLING))
    if inp.RANDOM_FLIP != "none":
        augs.append(RandomFlip(horizontal=inp.RANDOM_FLIP == "horizontal"))
    return augs


def _pick(values: list[Any], source: int, key: str) -> Any:
    if source >= len(values):
        raise DeticError(f"DATALOADER.{key} has {len(values)} entries; training dataset {source} needs one")
    return values[source]


def _tar_reader(cfg, records: list[dict[str, Any]]):
    """The tar decoder when USE_TAR_DATASET is on or any record points into the tars (`tar_index`)."""
    if not cfg.DATALOADER.USE_TAR_DATASET and not any("tar_index" in r for r in records):
        return None
    from detic_cli.data.tar_images import TarImageDecoder

    return TarImageDecoder(dataset_path(cfg.DATALOADER.TARFILE_PATH), dataset_path(cfg.DATALOADER.TAR_INDEX_DIR))
