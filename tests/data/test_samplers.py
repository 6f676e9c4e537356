"""Samplers: deterministic infinite streams, rank sharding, resume by skipping, RFS factors, dataset ratios."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from detic_cli.data.samplers import (
    GroupedBatchSampler,
    MultiDatasetSampler,
    RepeatFactorTrainingSampler,
    TrainingSampler,
    group_ids,
    repeat_factors_from_category_frequency,
)


def _take(iterable, n):
    return list(itertools.islice(iterable, n))


def test_training_sampler_epochs_and_determinism():
    stream = _take(TrainingSampler(7, seed=5), 21)
    assert all(sorted(stream[i:i + 7]) == list(range(7)) for i in (0, 7, 14))
    assert stream == _take(TrainingSampler(7, seed=5), 21) and stream != _take(TrainingSampler(7, seed=6), 21)
    g = torch.Generator()
    g.manual_seed(5)
    assert stream[:7] == torch.randperm(7, generator=g).tolist()  # the stream detectron2's sampler draws
    assert _take(TrainingSampler(4, shuffle=False), 6) == [0, 1, 2, 3, 0, 1]


@pytest.mark.parametrize("make", [lambda **kw: TrainingSampler(5, **kw),
                                  lambda **kw: RepeatFactorTrainingSampler(torch.tensor([1.0, 2.5, 1.2, 3.0]), **kw),
                                  lambda **kw: MultiDatasetSampler([0, 0, 1, 1, 1], dataset_ratio=[1, 2], **kw)])
def test_ranks_share_one_global_stream(make):
    world = 3
    full = _take(make(seed=11).positions(), 60)
    assert [p for _, p in full] == list(range(60))
    for rank in range(world):
        mine = _take(make(seed=11, rank=rank, world_size=world).positions(), 20)
        assert mine == full[rank::world]


def test_repeat_factors_hand_case():
    cats = [[0], [0, 1], [0, 0], [2], []]
    factors = repeat_factors_from_category_frequency(cats, 0.5)
    # f(0) = 3/5, f(1) = f(2) = 1/5: r(c) = max(1, sqrt(0.5 / f)) = 1, sqrt(2.5), sqrt(2.5)
    np.testing.assert_allclose(factors.numpy(), [1.0, math.sqrt(2.5), 1.0, math.sqrt(2.5), 1.0], rtol=1e-6)
    assert factors.dtype == torch.float32
    assert repeat_factors_from_category_frequency(cats, 0.001).tolist() == [1.0] * 5


def test_repeat_factor_stochastic_rounding():
    factors = torch.tensor([1.0, 2.25, 0.5]).repeat(4000)
    g = torch.Generator()
    g.manual_seed(0)
    counts = np.bincount(RepeatFactorTrainingSampler(factors).epoch_indices(g).numpy() % 3, minlength=3)
    np.testing.assert_allclose(counts / 4000, [1.0, 2.25, 0.5], atol=0.03)


def test_repeat_factor_stream_matches_detectron2_recipe():
    factors = torch.tensor([1.0, 2.25, 0.5, 1.7])
    g = torch.Generator()
    g.manual_seed(9)
    expected = []
    for _ in range(3):  # per epoch: stochastic rounding, list with repeats, then a shuffle
        reps = torch.trunc(factors) + (torch.rand(4, generator=g) < factors - torch.trunc(factors)).float()
        indices = torch.tensor([i for i, r in enumerate(reps) for _ in range(int(r))])
        expected += indices[torch.randperm(len(indices), generator=g)].tolist()
    assert _take(RepeatFactorTrainingSampler(factors, seed=9), len(expected)) == expected


def test_multi_dataset_ratio_in_the_long_run():
    sources = [0] * 10 + [1] * 40 + [2] * 5
    sampler = MultiDatasetSampler(sources, dataset_ratio=[1, 4, 1], seed=1)
    drawn = np.asarray(_take(sampler, 30000))
    share = np.bincount(np.asarray(sources)[drawn], minlength=3) / len(drawn)
    np.testing.assert_allclose(share, [1 / 6, 4 / 6, 1 / 6], atol=0.015)


def test_multi_dataset_rfs_within_a_dataset():
    sources = [0, 0, 0, 0, 1, 1]
    rfs = torch.tensor([1.0, 1.0, 1.0, 3.0])
    sampler = MultiDatasetSampler(sources, dataset_ratio=[1, 1], repeat_factors=[rfs, None], seed=2)
    drawn = np.bincount(np.asarray(_take(sampler, 30000)), minlength=6) / 30000
    np.testing.assert_allclose(drawn, [1 / 12, 1 / 12, 1 / 12, 3 / 12, 1 / 4, 1 / 4], atol=0.015)


def _batches(start=0, rank=0, world=1):
    heights = [10, 20, 10, 20, 10, 20, 30, 30]
    widths = [20, 10, 20, 10, 20, 10, 10, 40]
    sources = [0, 0, 0, 0, 1, 1, 1, 1]
    groups = group_ids(sources, heights, widths, by_source=True, by_aspect=True)
    assert groups == [0, 1, 0, 1, 2, 3, 3, 2]
    sampler = MultiDatasetSampler(sources, dataset_ratio=[1, 1], seed=4, rank=rank, world_size=world)
    return GroupedBatchSampler(sampler, groups=groups, batch_sizes=[2, 2, 3, 3], start_batch=start), groups


def test_grouped_batches_share_group_and_size():
    batches, groups = _batches()
    for batch in _take(batches, 50):
        assert len({groups[i] for i, _ in batch}) == 1
        assert len(batch) == [2, 2, 3, 3][groups[batch[0][0]]]
        keys = [k for _, k in batch]
        assert keys == sorted(keys)


@pytest.mark.parametrize("rank,world", [(0, 1), (1, 2)])
def test_resume_skip_equals_uninterrupted_run(rank, world):
    full = _take(_batches(rank=rank, world=world)[0], 40)
    for start in (1, 7, 25):
        assert _take(_batches(start=start, rank=rank, world=world)[0], 15) == full[start:start + 15]


def test_skipping_many_batches_is_cheap():
    import time

    sampler = TrainingSampler(100_000, seed=0)
    groups = [i % 2 for i in range(100_000)]
    began = time.perf_counter()
    first = next(iter(GroupedBatchSampler(sampler, groups=groups, batch_sizes=[8, 8], start_batch=20_000)))
    assert len(first) == 8 and time.perf_counter() - began < 10
