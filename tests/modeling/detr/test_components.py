"""Position encodings, valid ratios, encoder reference points and two-stage proposals: the documented facts."""

from __future__ import annotations

import math

import torch

from detic_cli.modeling.detr.box_ops import box_cxcywh_to_xyxy, inverse_sigmoid
from detic_cli.modeling.detr.encoder import encoder_reference_points
from detic_cli.modeling.detr.position_encoding import PositionEmbeddingSine, proposal_position_embedding
from detic_cli.modeling.detr.transformer import encoder_proposals, valid_ratio


def test_sine_embedding_values_and_layout():
    mask = torch.zeros(1, 3, 5, dtype=torch.bool)
    pos = PositionEmbeddingSine(num_pos_feats=8)(mask)
    assert pos.shape == (1, 16, 3, 5)
    j, k = 2, 1  # column 2, frequency pair 1 (channels 2 and 3 of each half)
    x = (j + 0.5) / (5 + 1e-6) * 2 * math.pi / 10000 ** (2 * k / 8)
    assert math.isclose(float(pos[0, 8 + 2 * k, 0, j]), math.sin(x), rel_tol=1e-5)
    assert math.isclose(float(pos[0, 8 + 2 * k + 1, 0, j]), math.cos(x), rel_tol=1e-5)
    y = (1 + 0.5) / (3 + 1e-6) * 2 * math.pi
    assert math.isclose(float(pos[0, 1, 1, 0]), math.cos(y), rel_tol=1e-5)  # row 1: angle pi


def test_sine_embedding_is_normalised_over_the_valid_area():
    padded = torch.ones(1, 4, 6, dtype=torch.bool)
    padded[:, :3, :4] = False
    embed = PositionEmbeddingSine(num_pos_feats=8)
    torch.testing.assert_close(embed(padded)[..., :3, :4], embed(torch.zeros(1, 3, 4, dtype=torch.bool)))


def test_valid_ratio_and_reference_points():
    mask = torch.ones(1, 4, 8, dtype=torch.bool)
    mask[:, :2, :6] = False
    ratios = valid_ratio(mask)
    torch.testing.assert_close(ratios, torch.tensor([[0.75, 0.5]]))
    ref = encoder_reference_points([(4, 8)], ratios[:, None])
    assert ref.shape == (1, 32, 1, 2)
    # cell (row 1, col 5): centre (5.5, 1.5) / valid extent (6, 2), then scaled back by the ratio
    torch.testing.assert_close(ref[0, 1 * 8 + 5, 0], torch.tensor([5.5 / 8, 1.5 / 4]))


def test_encoder_proposals():
    mask = torch.zeros(1, 4 * 4 + 2 * 2, dtype=torch.bool)
    mask[0, [16 + 1, 16 + 3]] = True  # level 1: the right column is padding
    proposals, invalid = encoder_proposals(mask, [(4, 4), (2, 2)])
    expected = inverse_sigmoid(torch.tensor([0.5 / 4, 1.5 / 4, 0.05, 0.05]))
    torch.testing.assert_close(proposals[0, 1 * 4 + 0], expected)  # level 0, row 1, col 0
    assert invalid[0, 17, 0] and torch.isinf(proposals[0, 17]).all()
    # level 1: side 0.1, centres normalised by the valid 1 x 2 cells
    torch.testing.assert_close(proposals[0, 16 + 2], inverse_sigmoid(torch.tensor([0.5, 0.75, 0.1, 0.1])))
    assert not invalid[0, :17, 0].any() and not invalid[0, 18, 0]


def test_proposal_embedding_and_box_helpers():
    unact = inverse_sigmoid(torch.tensor([[[0.5, 0.25, 0.1, 0.2]]]))
    emb = proposal_position_embedding(unact, num_pos_feats=4)
    assert emb.shape == (1, 1, 16)
    # coordinate 1 (cy = 0.25), frequency pair 1: channels 4 + 2, 4 + 3
    v = 0.25 * 2 * math.pi / 10000 ** (2 / 4)
    torch.testing.assert_close(emb[0, 0, 6:8], torch.tensor([math.sin(v), math.cos(v)]), rtol=1e-4, atol=1e-5)
    xyxy = box_cxcywh_to_xyxy(torch.tensor([0.5, 0.5, 0.2, 0.4]))
    torch.testing.assert_close(xyxy, torch.tensor([0.4, 0.3, 0.6, 0.7]))
    assert torch.isfinite(inverse_sigmoid(torch.tensor([0.0, 1.0]))).all()
