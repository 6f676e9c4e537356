"""CenterNet proposal losses: hand-checked targets, loss values, zero-box images, and a tiny overfit."""

from __future__ import annotations

import math

import pytest
import torch

from detic_cli.config import load_config
from detic_cli.errors import DeticError
from detic_cli.modeling.builders import build_model
from detic_cli.modeling.proposal.centernet import compute_grids
from detic_cli.modeling.proposal.centernet_loss import CenterNetLoss, image_targets, positive_indices
from detic_cli.structures import Boxes, Instances, pairwise_iou

R18 = "BoxSup-C2_LCOCO_CLIP_R18_640b32_4x.yaml"
DELTA = (1 - 0.8) / (1 + 0.8)
INF = 1e8


def _level_inputs(shapes, strides, ranges):
    grids = compute_grids([torch.zeros(1, 1, h, w) for h, w in shapes], strides)
    flat = torch.cat(grids)
    per_loc_stride = torch.cat([torch.full((len(g),), float(s)) for g, s in zip(grids, strides)])
    per_loc_range = torch.cat([torch.tensor(r, dtype=torch.float32).expand(len(g), 2) for g, r in zip(grids, ranges)])
    return grids, flat, per_loc_stride, per_loc_range


def _targets(boxes, shapes, strides, ranges):
    _, flat, s, r = _level_inputs(shapes, strides, ranges)
    return image_targets(torch.tensor(boxes, dtype=torch.float32), flat, s, r, delta=DELTA, min_radius=4.0)


def test_single_box_heatmap_peak_and_regression_by_hand():
    # 32x32 input, stride 8: cell centres 4, 12, 20, 28. Box centre (20, 18) -> centre cell (x=2, y=2).
    heatmap, reg = _targets([[10.0, 10.0, 30.0, 26.0]], [(4, 4)], [8], [(0, 1e6)])
    heatmap, reg = heatmap.view(4, 4), reg.view(4, 4, 4)
    assert heatmap[2, 2] == 1.0  # the centre cell is the peak even though it is 2 px from the centre
    # area 320 -> 2 * delta^2 * 320 = 7.9 < MIN_RADIUS^2 = 16
    assert heatmap[1, 2].item() == pytest.approx(math.exp(-36 / 16))  # (20, 12): d^2 = 36
    assert heatmap[2, 1].item() == pytest.approx(math.exp(-68 / 16))  # (12, 20): d^2 = 64 + 4
    assert heatmap[0, 0] == 0  # exp(-452 / 16) < 1e-4
    has_reg = reg.max(dim=2).values >= 0
    want = torch.zeros(4, 4, dtype=torch.bool)
    want[1:3, 1:4] = True  # within one stride of the centre cell and strictly inside (y = 28 is below y2 = 26)
    assert torch.equal(has_reg, want)
    assert reg[2, 2].tolist() == [10 / 8, 10 / 8, 10 / 8, 6 / 8]
    assert reg[1, 3].tolist() == [18 / 8, 2 / 8, 2 / 8, 14 / 8]
    assert (reg[~want] == -INF).all()


def test_levels_positives_and_regression_across_two_levels():
    # strides 8 and 16 on 32x32; A has half diagonal 12.8 (both levels), B 18.0 (second level only)
    boxes = [[10.0, 10.0, 30.0, 26.0], [0.0, 0.0, 30.0, 20.0]]
    shapes, strides, ranges = [(4, 4), (2, 2)], [8, 16], [(0, 16), (12, 1e6)]
    pos = positive_indices(torch.tensor(boxes), level_shapes=shapes, strides=strides, sizes_of_interest=ranges)
    assert sorted(pos.tolist()) == [2 * 4 + 2, 16 + 0, 16 + 1 * 2 + 1]  # A on both levels, B on level 2
    heatmap, reg = _targets(boxes, shapes, strides, ranges)
    level2 = reg[16:].view(2, 2, 4)
    assert level2[0, 0].tolist() == [8 / 16, 8 / 16, 22 / 16, 12 / 16]  # (8, 8): B only (A starts at 10)
    assert level2[0, 1].tolist() == [24 / 16, 8 / 16, 6 / 16, 12 / 16]  # (24, 8): B (outside A)
    assert level2[1, 1].tolist() == [14 / 16, 14 / 16, 6 / 16, 2 / 16]  # (24, 24): A (below B)
    assert level2[1, 0].max() == -INF  # (8, 24): inside neither
    level1 = reg[:16].view(4, 4, 4)
    assert (level1.max(dim=2).values >= 0).sum() == 6  # B is not regressed on level 1
    assert heatmap[10] == 1 and heatmap[16 + 3] == 1  # A's centre cells
    assert heatmap[16 + 0] == 1 and heatmap[1 * 4 + 1] == 1  # B's, also on level 1 where it is not assigned
    assert torch.isfinite(heatmap).all() and heatmap.max() == 1


def test_regression_goes_to_the_box_with_the_smallest_normalised_distance():
    # both centred at (16, 16); at cell (12, 12) d^2 = 32, big box r^2 = 2048/81, small box r^2 = 16
    heatmap, reg = _targets([[8.0, 8.0, 24.0, 24.0], [0.0, 0.0, 32.0, 32.0]], [(4, 4)], [8], [(0, 1e6)])
    assert reg.view(4, 4, 4)[1, 1].tolist() == [12 / 8, 12 / 8, 20 / 8, 20 / 8]
    assert heatmap.view(4, 4)[1, 1].item() == pytest.approx(math.exp(-32 * 81 / 2048), rel=1e-6)


def _loss(**kw) -> CenterNetLoss:
    args = dict(strides=[8, 16], sizes_of_interest=[(0, 16), (12, 1e6)], pos_weight=0.5, neg_weight=0.5,
                reg_weight=1.0, ignore_high_fp=0.85)
    args.update(kw)
    return CenterNetLoss(**args)


def _head_outputs(batch, value=0.0, reg=0.0):
    box_reg = [torch.full((batch, 4, h, w), reg, requires_grad=True) for h, w in [(4, 4), (2, 2)]]
    agn = [torch.full((batch, 1, h, w), value, requires_grad=True) for h, w in [(4, 4), (2, 2)]]
    return compute_grids(box_reg, [8, 16]), box_reg, agn


def _gt(boxes):
    return Instances((32, 32), gt_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32).view(-1, 4)))


def test_zero_box_images_give_negative_loss_only():
    grids, box_reg, agn = _head_outputs(2, value=-1.0)
    losses = _loss()(grids=grids, box_reg=box_reg, agn_hms=agn, gt_instances=[_gt([]), _gt([])])
    assert sorted(losses) == ["loss_centernet_agn_neg", "loss_centernet_agn_pos", "loss_centernet_loc"]
    assert losses["loss_centernet_loc"].item() == 0 and losses["loss_centernet_agn_pos"].item() == 0
    p = 1 / (1 + math.exp(1.0))
    want = 0.5 * 0.75 * 2 * 20 * (-math.log(1 - p) * p ** 2)  # 2 images x 20 locations, divided by max(0, 1)
    assert losses["loss_centernet_agn_neg"].item() == pytest.approx(want, rel=1e-5)
    sum(losses.values()).backward()
    assert agn[0].grad.abs().sum() > 0 and torch.isfinite(box_reg[0].grad).all()


def test_constant_predictions_give_closed_form_losses():
    boxes = [[10.0, 10.0, 30.0, 26.0], [0.0, 0.0, 30.0, 20.0]]
    grids, box_reg, agn = _head_outputs(1, value=0.0, reg=0.0)
    loss = _loss()
    losses = loss(grids=grids, box_reg=box_reg, agn_hms=agn, gt_instances=[_gt(boxes)])
    # p = 0.5 at the 3 positives: each 0.25 * log 2, times alpha; divided by the 3 positives
    assert losses["loss_centernet_agn_pos"].item() == pytest.approx(0.5 * 0.25 * 0.25 * math.log(2))
    # zero ltrb predictions: inter 0, enclose = union = target area a -> 1 - 1 / (a + 1) per location
    heatmap, reg, _ = loss.targets(grids, [(4, 4), (2, 2)], [_gt(boxes)])
    valid = reg.max(dim=1).values >= 0
    area = (reg[valid, 0] + reg[valid, 2]) * (reg[valid, 1] + reg[valid, 3])
    assert losses["loss_centernet_loc"].item() == pytest.approx((1 - 1 / (area + 1)).mean().item(), rel=1e-5)
    weighted = _loss(not_norm_reg=False)(grids=grids, box_reg=box_reg, agn_hms=agn, gt_instances=[_gt(boxes)])
    w = heatmap[valid]
    want = ((1 - 1 / (area + 1)) * w).sum() / w.sum().clamp(min=1)
    assert weighted["loss_centernet_loc"].item() == pytest.approx(want.item(), rel=1e-5)


def test_perfect_predictions_in_the_second_image_give_near_zero_losses():
    boxes = [[10.0, 10.0, 30.0, 26.0], [0.0, 0.0, 30.0, 20.0]]
    gts = [_gt([]), _gt(boxes)]
    loss = _loss()
    _, reg, pos = loss.targets(_head_outputs(2)[0], [(4, 4), (2, 2)], gts)
    logits = torch.full((2 * 20,), -12.0)
    logits[pos] = 12.0
    valid = reg.max(dim=1).values >= 0
    ltrb = torch.where(valid[:, None], reg, torch.ones_like(reg)).view(2, 20, 4)
    grids = _head_outputs(2)[0]
    box_reg = [ltrb[:, :16].reshape(2, 4, 4, 4).permute(0, 3, 1, 2),
               ltrb[:, 16:].reshape(2, 2, 2, 4).permute(0, 3, 1, 2)]
    agn = [logits.view(2, 20)[:, :16].reshape(2, 1, 4, 4), logits.view(2, 20)[:, 16:].reshape(2, 1, 2, 2)]
    losses = loss(grids=grids, box_reg=box_reg, agn_hms=agn, gt_instances=gts)
    assert pos.min() >= 20  # every positive is in the second image
    assert losses["loss_centernet_loc"].item() < 1e-6
    assert losses["loss_centernet_agn_pos"].item() < 1e-6 and losses["loss_centernet_agn_neg"].item() < 1e-4
    swapped = loss(grids=grids, box_reg=box_reg, agn_hms=agn, gt_instances=gts[::-1])
    assert swapped["loss_centernet_agn_pos"].item() > 1.0 and swapped["loss_centernet_loc"].item() > 0.1


@pytest.fixture(scope="module")
def r18_model(shared_dir):
    return build_model(load_config(shared_dir / "detic-reference/configs" / R18))


def test_build_passes_the_detic_settings(r18_model, shared_dir):
    pg = r18_model.proposal_generator
    assert isinstance(pg.losses, CenterNetLoss)
    assert (pg.losses.pos_weight, pg.losses.neg_weight, pg.losses.reg_weight) == (0.5, 0.5, 1.0)
    assert pg.losses.focal == dict(alpha=0.25, beta=4.0, gamma=2.0, sigmoid_clamp=1e-4, ignore_high_fp=0.85)
    assert pg.losses.not_norm_reg and pg.losses.strides == [8, 16, 32, 64, 128]
    assert pg.losses.sizes_of_interest[0] == (0, 80) and pg.losses.min_radius == 4
    assert all(k.startswith("centernet_head.") for k in pg.state_dict())  # checkpoints are unchanged
    cfg = load_config(shared_dir / "detic-reference/configs" / R18, ["MODEL.CENTERNET.MORE_POS=True"])
    with pytest.raises(DeticError, match="MORE_POS"):
        build_model(cfg)


def _synthetic_image():
    image = torch.full((3, 128, 128), 90, dtype=torch.uint8)
    boxes = torch.tensor([[12.0, 20.0, 60.0, 76.0], [70.0, 36.0, 120.0, 112.0]])
    image[:, 20:76, 12:60] = torch.tensor([230, 40, 40], dtype=torch.uint8).view(3, 1, 1)
    image[:, 36:112, 70:120] = torch.tensor([30, 200, 60], dtype=torch.uint8).view(3, 1, 1)
    return image, boxes


def test_proposal_losses_overfit_one_image(r18_model):
    torch.manual_seed(0)
    image, boxes = _synthetic_image()
    gts = [Instances((128, 128), gt_boxes=Boxes(boxes), gt_classes=torch.tensor([0, 1]))]
    images = r18_model.preprocess_image([{"image": image, "height": 128, "width": 128}])
    with torch.no_grad():
        features = r18_model.backbone(images.tensor)
    pg = r18_model.proposal_generator
    pg.train()
    optimizer = torch.optim.SGD(pg.parameters(), lr=5e-4, momentum=0.9)
    totals = []
    for _ in range(50):
        proposals, losses = pg.forward_with_losses(images, features, gts)
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(total.item())
    assert len(proposals) == 1 and not proposals[0].objectness_logits.requires_grad
    assert totals[-1] < 0.25 * totals[0], totals
    pg.eval()
    with torch.no_grad():
        result = pg(images, features)[0]
    top = result.proposal_boxes[result.objectness_logits.argsort(descending=True)[:5]]
    iou = pairwise_iou(Boxes(boxes), top)
    assert (iou.max(dim=1).values > 0.6).all(), iou
    assert iou[:, 0].max() > 0.5, iou
