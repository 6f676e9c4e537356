"""ImageList: images padded at the bottom/right into one batch tensor."""

from __future__ import annotations

import torch

from detic_cli.structures import ImageList


def test_from_tensors_pads_to_a_multiple_and_keeps_the_sizes():
    images = ImageList.from_tensors([torch.ones(3, 5, 7), torch.ones(3, 9, 4)], size_divisibility=4, pad_value=-1)
    assert images.tensor.shape == (2, 3, 12, 8) and images.image_sizes == [(5, 7), (9, 4)] and len(images) == 2
    assert images.tensor[0, :, :5, :7].eq(1).all() and images.tensor[0, :, 5:, :].eq(-1).all()
    assert ImageList.from_tensors([torch.ones(1, 5, 7)]).tensor.shape == (1, 1, 5, 7)
