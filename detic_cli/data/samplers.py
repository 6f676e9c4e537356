"""Infinite training samplers (detectron2/Detic semantics), deterministic given (seed, rank, world_size).

Every sampler draws one global stream of dataset indices, "epoch" by "epoch" from a torch Generator
seeded with `seed`, and rank r keeps the stream positions p with p % world_size == r. `positions()`
yields (index, p): p is the sample's place in the global stream, which the batch sampler passes on
as the key that seeds the sample's augmentation, so a sample looks the same at any world size.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


class StreamSampler(Sampler[int]):
    """Base: `_epochs()` yields 1-D int64 arrays of dataset indices forever; sharded by rank."""

    def __init__(self, *, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.seed, self.rank, self.world_size = int(seed) % (1 << 63), rank, world_size

    def _epochs(self, generator: torch.Generator) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def positions(self) -> Iterator[tuple[int, int]]:
        """(dataset index, global stream position) for this rank, forever."""
        g = torch.Generator()
        g.manual_seed(self.seed)
        start = 0
        for chunk in self._epochs(g):
            first = (self.rank - start) % self.world_size
            local = chunk[first::self.world_size].tolist()
            yield from zip(local, range(start + first, start + len(chunk), self.world_size))
            start += len(chunk)

    def __iter__(self) -> Iterator[int]:
        for index, _ in self.positions():
            yield index


class TrainingSampler(StreamSampler):
    """shuffle(range(size)) + shuffle(range(size)) + ... (or the plain ranges without shuffle)."""

    def __init__(self, size: int, *, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1):
        super().__init__(seed=seed, rank=rank, world_size=world_size)
        if size <= 0:
            raise ValueError(f"TrainingSampler needs a positive size, got {size}")
        self.size, self.shuffle = size, shuffle

    def _epochs(self, generator: torch.Generator) -> Iterator[np.ndarray]:
        while True:
            order = torch.randperm(self.size, generator=generator) if self.shuffle else torch.arange(self.size)
            yield order.numpy()


class RepeatFactorTrainingSampler(StreamSampler):
    """Each epoch repeats image i floor(r_i) times plus once more with probability frac(r_i), then shuffles."""

    def __init__(self, repeat_factors: torch.Tensor, *, shuffle: bool = True, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        super().__init__(seed=seed, rank=rank, world_size=world_size)
        factors = torch.as_tensor(repeat_factors, dtype=torch.float32)
        self.int_part = torch.trunc(factors)
        self.frac_part = factors - self.int_part
        self.shuffle = shuffle

    def epoch_indices(self, generator: torch.Generator) -> torch.Tensor:
        """Stochastic rounding of the repeat factors: indices with repeats, in index order."""
        rands = torch.rand(len(self.frac_part), generator=generator)
        counts = (self.int_part + (rands < self.frac_part).float()).long()
        return torch.repeat_interleave(torch.arange(len(counts)), counts)

    def _epochs(self, generator: torch.Generator) -> Iterator[np.ndarray]:
        while True:
            indices = self.epoch_indices(generator)
            if self.shuffle:
                indices = indices[torch.randperm(len(indices), generator=generator)]
            yield indices.numpy()


class MultiDatasetSampler(StreamSampler):
    """Detic's sampler: draws with replacement, dataset d with weight max(sizes) / size_d * ratio_d / sum(ratios),
    times the image's repeat factor normalised to mean 1 within its dataset (datasets without RFS: 1).

    In the long run dataset d makes up ratio_d / sum(ratios) of the samples.
    """

    def __init__(self, dataset_sources: Sequence[int], *, dataset_ratio: Sequence[float],
                 repeat_factors: Sequence[torch.Tensor | None] | None = None, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        super().__init__(seed=seed, rank=rank, world_size=world_size)
        sources = torch.as_tensor(list(dataset_sources), dtype=torch.long)
        sizes = [int((sources == d).sum()) for d in range(len(dataset_ratio))]
        if any(s == 0 for s in sizes):
            raise ValueError(f"every dataset needs images; sizes per dataset: {sizes}")
        if int(sources.max()) >= len(dataset_ratio):
            raise ValueError(f"{int(sources.max()) + 1} datasets but {len(dataset_ratio)} ratios")
        weights = torch.empty(len(sources), dtype=torch.float64)
        for d, (size, ratio) in enumerate(zip(sizes, dataset_ratio)):
            member = sources == d
            factor = repeat_factors[d] if repeat_factors is not None else None
            rfs = torch.ones(size, dtype=torch.float64) if factor is None else torch.as_tensor(factor).double()
            weights[member] = max(sizes) / size * ratio / sum(dataset_ratio) * rfs * (size / rfs.sum())
        self.sizes, self.weights = sizes, weights

    def _epochs(self, generator: torch.Generator) -> Iterator[np.ndarray]:
        while True:
            yield torch.multinomial(self.weights, len(self.weights), replacement=True, generator=generator).numpy()


def repeat_factors_from_category_frequency(categories_per_image: Sequence[Iterable[int]],
                                           repeat_thresh: float) -> torch.Tensor:
    """(N,) float32 LVIS repeat factors: r(c) = max(1, sqrt(t / f(c))) with f(c) the fraction of images
    holding category c; r(image) = max over its categories (1 for an image without any)."""
    sets = [set(c) for c in categories_per_image]
    freq: dict[int, int] = defaultdict(int)
    for cats in sets:
        for c in cats:
            freq[c] += 1
    rep = {c: max(1.0, math.sqrt(repeat_thresh / (n / len(sets)))) for c, n in freq.items()}
    return torch.tensor([max((rep[c] for c in cats), default=1.0) for cats in sets], dtype=torch.float32)


def group_ids(sources: Sequence[int], heights: Sequence[int], widths: Sequence[int], *, by_source: bool,
              by_aspect: bool) -> list[int]:
    """Per record: 2 * source (when `by_source`) + (0 if width > height else 1) (when `by_aspect`)."""
    return [2 * (s if by_source else 0) + (int(w <= h) if by_aspect else 0)
            for s, h, w in zip(sources, heights, widths)]


class GroupedBatchSampler:
    """Batches of (dataset index, sample key) from a stream sampler: each sample goes to the bucket of its
    group, and a bucket is yielded (in arrival order) as soon as it holds `batch_sizes[group]` samples.

    The sample key is the global stream position. `start_batch` skips that many batches by index
    arithmetic alone, so a resumed run yields exactly the batches an uninterrupted one would.
    """

    def __init__(self, sampler: StreamSampler, *, groups: Sequence[int], batch_sizes: Sequence[int],
                 start_batch: int = 0) -> None:
        if any(b <= 0 for b in batch_sizes):
            raise ValueError(f"batch sizes must be positive, got {list(batch_sizes)}")
        self.sampler, self.groups, self.batch_sizes = sampler, list(groups), list(batch_sizes)
        self.start_batch = int(start_batch)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        groups, sizes = self.groups, self.batch_sizes
        buckets: list[list[tuple[int, int]]] = [[] for _ in sizes]
        made = 0
        for index, position in self.sampler.positions():
            g = groups[index]
            bucket = buckets[g]
            bucket.append((index, position))
            if len(bucket) == sizes[g]:
                if made >= self.start_batch:
                    yield bucket
                buckets[g] = []
                made += 1
