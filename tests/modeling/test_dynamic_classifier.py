"""Dynamic classifier: sampled class subset, id remapping and the subset classifier."""

from __future__ import annotations

import pytest
import torch

from detic_cli.modeling.dynamic_classifier import remap_classes, sample_batch_classes, subset_classifier
from detic_cli.modeling.roi_heads.zero_shot_classifier import ZeroShotClassifier


def test_sample_batch_classes_and_remap():
    g = torch.Generator().manual_seed(0)
    batch = torch.tensor([8, 3, 3, 17])
    inds, cls_id_map = sample_batch_classes(batch, num_classes=20, num_sample=6, generator=g)
    assert inds[:3].tolist() == [3, 8, 17]
    assert len(inds) == 6 and len(set(inds.tolist())) == 6 and int(inds.max()) < 20
    assert cls_id_map.shape == (21,)
    assert cls_id_map[inds].tolist() == list(range(6))
    others = [c for c in range(21) if c not in inds.tolist()]
    assert all(int(cls_id_map[c]) == 6 for c in others)  # unsampled classes and background -> K
    gt = torch.tensor([17, 20, 3, 8])
    assert remap_classes(gt, cls_id_map).tolist() == [2, 6, 0, 1]


def test_sample_batch_classes_freq_weight_and_edges():
    weight = torch.zeros(10)
    weight[[4, 6]] = 1.0
    inds, _ = sample_batch_classes(torch.tensor([1]), num_classes=10, num_sample=5, freq_weight=weight)
    assert sorted(inds.tolist()) == [1, 4, 6]  # only the drawable classes, K < num_sample
    inds, cls_id_map = sample_batch_classes(torch.zeros(0, dtype=torch.long), num_classes=4, num_sample=10)
    assert sorted(inds.tolist()) == [0, 1, 2, 3] and int(cls_id_map[4]) == 4
    many = torch.arange(8)
    inds, _ = sample_batch_classes(many, num_classes=8, num_sample=3)
    assert inds.tolist() == list(range(8))  # more batch classes than num_sample: all kept
    with pytest.raises(ValueError, match="outside"):
        sample_batch_classes(torch.tensor([8]), num_classes=8, num_sample=3)


def test_subset_classifier_gives_the_subset_logits():
    torch.manual_seed(0)
    clf = ZeroShotClassifier(input_size=16, num_classes=7, zs_weight_dim=8)
    clf.set_embeddings(torch.randn(7, 8))
    x = torch.randn(5, 16)
    inds = torch.tensor([5, 1, 3])
    weights = subset_classifier(clf.zs_weight, inds)
    assert weights.shape == (4, 8) and torch.all(weights[-1] == 0)
    full = clf(x)
    sub = clf(x, classifier=weights)
    assert sub.shape == (5, 4)
    assert torch.allclose(sub, full[:, [5, 1, 3, 7]], atol=1e-5)
