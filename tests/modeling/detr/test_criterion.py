"""Deformable DETR training: Hungarian matcher, set-criterion losses, max-size image loss and a tiny overfit."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from detic_cli.data.class_frequencies import read_class_image_counts
from detic_cli.errors import DeticError
from detic_cli.modeling.detr.criterion import SetCriterion, max_size_image_loss, targets_from_instances
from detic_cli.modeling.detr.matcher import HungarianMatcher, focal_class_cost
from detic_cli.structures import Boxes, Instances

CONFIG = "BoxSup-DeformDETR_L_R50_4x.yaml"
SMALL = ["MODEL.WEIGHTS=", "MODEL.RESNETS.DEPTH=18", "MODEL.RESNETS.RES2_OUT_CHANNELS=64", "MODEL.DETR.NUM_CLASSES=5",
         "MODEL.DETR.NHEADS=2", "MODEL.DETR.ENC_LAYERS=1", "MODEL.DETR.DEC_LAYERS=2", "MODEL.DETR.DIM_FEEDFORWARD=64",
         "MODEL.DETR.NUM_OBJECT_QUERIES=10", "MODEL.DETR.USE_FED_LOSS=False", "MODEL.DETR.DROPOUT=0.0",
         "TEST.DETECTIONS_PER_IMAGE=20"]


def _giou(a: list[float], b: list[float]) -> float:
    """GIoU of two XYXY boxes, by hand."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    return inter / union - (hull - union) / hull


def _xyxy(b: list[float]) -> list[float]:
    return [b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2]


def _focal(x: float, t: float, alpha: float = 0.25) -> float:
    p = 1 / (1 + math.exp(-x))
    ce = -math.log(p) if t else -math.log(1 - p)
    pt = p if t else 1 - p
    return (alpha if t else 1 - alpha) * (1 - pt) ** 2 * ce


def _hand_cost(logits, boxes, labels, tboxes, wc, wb, wg, q, t) -> float:
    p = 1 / (1 + math.exp(-float(logits[q, labels[t]])))
    cls = 0.25 * (1 - p) ** 2 * -math.log(p + 1e-8) - 0.75 * p ** 2 * -math.log(1 - p + 1e-8)
    l1 = sum(abs(float(boxes[q, k] - tboxes[t, k])) for k in range(4))
    g = _giou(_xyxy(boxes[q].tolist()), _xyxy(tboxes[t].tolist()))
    return wc * cls + wb * l1 - wg * g


def _random_case(gen: torch.Generator, q: int, t: int, c: int = 3):
    logits = torch.randn(q, c, generator=gen) * 2
    boxes = torch.rand(q, 4, generator=gen) * 0.4 + 0.3
    labels = torch.randint(0, c, (t,), generator=gen)
    tboxes = torch.rand(t, 4, generator=gen) * 0.4 + 0.3
    return logits, boxes, labels, tboxes


@pytest.mark.parametrize("q,t", [(3, 2), (4, 3), (5, 4), (3, 3)])
def test_matcher_is_optimal_against_brute_force(q, t):
    gen = torch.Generator().manual_seed(q * 10 + t)
    weights = (2.0, 5.0, 2.0)
    matcher = HungarianMatcher(cost_class=weights[0], cost_bbox=weights[1], cost_giou=weights[2])
    for _ in range(5):
        logits, boxes, labels, tboxes = _random_case(gen, q, t)
        cost = [[_hand_cost(logits, boxes, labels, tboxes, *weights, qi, ti) for ti in range(t)] for qi in range(q)]
        got = matcher.cost_matrix(logits, boxes, labels, tboxes)
        assert torch.allclose(got.double(), torch.tensor(cost, dtype=torch.float64), atol=1e-5)
        (rows, cols), = matcher(logits[None], boxes[None], [{"labels": labels, "boxes": tboxes}])
        assert len(rows) == t and sorted(cols.tolist()) == list(range(t)) and len(set(rows.tolist())) == t
        best = min(sum(cost[perm[j]][j] for j in range(t)) for perm in itertools.permutations(range(q), t))
        assert sum(cost[r][c] for r, c in zip(rows.tolist(), cols.tolist())) == pytest.approx(best, abs=1e-5)


def test_matcher_empty_targets_and_focal_cost_values():
    matcher = HungarianMatcher()
    (rows, cols), = matcher(torch.zeros(1, 4, 2), torch.full((1, 4, 4), 0.5),
                            [{"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}])
    assert rows.numel() == 0 and cols.numel() == 0
    cost = focal_class_cost(torch.tensor([[0.5, 0.9]]), torch.tensor([1, 0]))
    p = 0.9
    expect = 0.25 * 0.01 * -math.log(p + 1e-8) - 0.75 * 0.81 * -math.log(1 - p + 1e-8)
    assert cost[0, 0].item() == pytest.approx(expect, rel=1e-5)
    assert cost[0, 1].item() == pytest.approx(0.25 * 0.25 * math.log(2) - 0.75 * 0.25 * math.log(2), rel=1e-4)


def _one_target_case():
    logits = torch.tensor([[[2.0, -1.0], [-3.0, 0.5]]])  # 1 image, 2 queries, 2 classes
    boxes = torch.tensor([[[0.5, 0.5, 0.4, 0.4], [0.2, 0.3, 0.1, 0.2]]])
    target = {"labels": torch.tensor([0]), "boxes": torch.tensor([[0.55, 0.5, 0.4, 0.3]])}
    return logits, boxes, target


def test_losses_against_hand_computation():
    logits, boxes, target = _one_target_case()
    crit = SetCriterion(num_classes=2, matcher=HungarianMatcher(cost_class=2, cost_bbox=5, cost_giou=2),
                        cls_weight=2.0, l1_weight=5.0, giou_weight=3.0)
    out = {"pred_logits": logits, "pred_boxes": boxes}
    losses = crit([out], [target])
    assert set(losses) == {"loss_ce", "loss_bbox", "loss_giou"}
    # query 0 matches the target (class 0): focal over all 4 (query, class) logits / 1 box
    ce = _focal(2.0, 1) + _focal(-1.0, 0) + _focal(-3.0, 0) + _focal(0.5, 0)
    assert losses["loss_ce"].item() == pytest.approx(2.0 * ce, rel=1e-5)
    assert losses["loss_bbox"].item() == pytest.approx(5.0 * (0.05 + 0.0 + 0.0 + 0.1), rel=1e-5)
    giou = _giou(_xyxy([0.5, 0.5, 0.4, 0.4]), _xyxy([0.55, 0.5, 0.4, 0.3]))
    assert losses["loss_giou"].item() == pytest.approx(3.0 * (1 - giou), rel=1e-5)


def test_aux_and_encoder_names_weights_and_binary_targets():
    logits, boxes, target = _one_target_case()
    target = {"labels": torch.tensor([1]), "boxes": target["boxes"]}
    crit = SetCriterion(num_classes=2, matcher=HungarianMatcher(), cls_weight=2.0, l1_weight=5.0, giou_weight=3.0)
    out = {"pred_logits": logits, "pred_boxes": boxes}
    losses = crit([out, out, out], [target], enc=out)
    names = {f"loss_{n}{s}" for n in ("ce", "bbox", "giou") for s in ("", "_0", "_1", "_enc")}
    assert set(losses) == names
    for n in ("ce", "bbox", "giou"):
        assert torch.equal(losses[f"loss_{n}_0"], losses[f"loss_{n}"])
    assert losses["loss_bbox_enc"].item() == pytest.approx(losses["loss_bbox"].item() / 5.0, rel=1e-6)
    # the encoder loss targets class 0 whatever the label, and is not weighted
    binary = crit([out], [{"labels": torch.tensor([0]), "boxes": target["boxes"]}])
    assert losses["loss_ce_enc"].item() == pytest.approx(binary["loss_ce"].item() / 2.0, rel=1e-6)


def test_empty_targets_and_num_boxes_normalisation():
    logits, boxes, target = _one_target_case()
    crit = SetCriterion(num_classes=2, matcher=HungarianMatcher(), cls_weight=1.0, l1_weight=1.0, giou_weight=1.0)
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}
    losses = crit([{"pred_logits": logits, "pred_boxes": boxes}], [empty])
    ce = _focal(2.0, 0) + _focal(-1.0, 0) + _focal(-3.0, 0) + _focal(0.5, 0)
    assert losses["loss_ce"].item() == pytest.approx(ce, rel=1e-5)  # num_boxes clamped to 1
    assert losses["loss_bbox"].item() == 0 and losses["loss_giou"].item() == 0
    two = crit([{"pred_logits": logits.repeat(2, 1, 1), "pred_boxes": boxes.repeat(2, 1, 1)}], [target, target])
    one = crit([{"pred_logits": logits, "pred_boxes": boxes}], [target])
    assert all(two[k].item() == pytest.approx(one[k].item(), rel=1e-6) for k in one)  # sums / num_boxes


def test_federated_loss_uses_only_sampled_columns(tmp_path):
    freq = tmp_path / "cat_info.json"
    freq.write_text(json.dumps([{"id": i + 1, "image_count": n} for i, n in enumerate([4, 0, 9, 0])]))
    logits = torch.tensor([[[1.0, 2.0, -1.0, 3.0], [0.0, -2.0, 0.5, 1.5]]])
    boxes = torch.tensor([[[0.5, 0.5, 0.4, 0.4], [0.2, 0.3, 0.1, 0.2]]])
    target = {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]])}
    crit = SetCriterion(num_classes=4, matcher=HungarianMatcher(), cls_weight=1.0, l1_weight=1.0, giou_weight=1.0,
                        use_fed_loss=True, class_counts=read_class_image_counts(freq), fed_num_sample=50)
    loss = crit([{"pred_logits": logits, "pred_boxes": boxes}], [target])["loss_ce"].item()
    # columns: the matched class 1, plus classes 0 and 2 (non-zero frequency); class 3 never counts
    expect = sum(_focal(float(logits[0, 0, c]), c == 1) + _focal(float(logits[0, 1, c]), 0) for c in (0, 1, 2))
    assert loss == pytest.approx(expect, rel=1e-5)


def test_max_size_image_loss_by_hand():
    logits = torch.tensor([[[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]]])  # 1 image, 2 queries, 3 classes
    boxes = torch.tensor([[[0.5, 0.5, 0.1, 0.1], [0.5, 0.5, 0.3, 0.2]]])  # query 1 is the larger
    layer = {"pred_logits": logits, "pred_boxes": boxes}
    loss = max_size_image_loss([layer, layer], [[0, 2]])

    def bce(x: float, t: int) -> float:
        return -math.log(1 / (1 + math.exp(-x))) if t else -math.log(1 - 1 / (1 + math.exp(-x)))

    per_label = [sum(bce(x, int(c == label)) for c, x in enumerate([2.0, 0.0, 0.0])) for label in (0, 2)]
    assert loss.item() == pytest.approx(2 * sum(per_label) / 2, rel=1e-5)


def test_targets_from_instances_normalise_to_cxcywh():
    inst = Instances((50, 100), gt_boxes=Boxes(torch.tensor([[10.0, 5.0, 30.0, 45.0]])), gt_classes=torch.tensor([3]))
    (t,) = targets_from_instances([inst])
    assert t["labels"].tolist() == [3]
    assert torch.allclose(t["boxes"], torch.tensor([[0.2, 0.5, 0.2, 0.8]]))


def _small_model(shared_dir, extra=()):
    from detic_cli.config import load_config
    from detic_cli.modeling.builders import build_model

    cfg = load_config(shared_dir / "detic-reference" / "configs" / CONFIG, [*SMALL, *extra])
    torch.manual_seed(0)
    return build_model(cfg)


def _batch(ann_type: str = "box"):
    gen = torch.Generator().manual_seed(0)
    image = torch.randint(0, 255, (3, 64, 96), dtype=torch.uint8, generator=gen)
    inst = Instances((64, 96), gt_boxes=Boxes(torch.tensor([[10.0, 10.0, 40.0, 50.0], [50.0, 5.0, 90.0, 30.0]])),
                     gt_classes=torch.tensor([1, 3]))
    return [{"image": image, "height": 64, "width": 96, "instances": inst, "ann_type": ann_type,
             "pos_category_ids": [1, 3]}]


def test_image_labels_need_with_image_labels(shared_dir):
    model = _small_model(shared_dir).train()
    with pytest.raises(DeticError, match="ann_type 'image'"):
        model(_batch("image"))
    weak = _small_model(shared_dir, ["WITH_IMAGE_LABELS=True"]).train()
    image = weak(_batch("image"))
    assert image["loss_image"].item() > 0 and torch.isfinite(sum(image.values()))
    assert weak(_batch("box"))["loss_image"].item() == 0


def test_overfits_one_tiny_image(shared_dir):
    model = _small_model(shared_dir).train()
    batch = _batch()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    totals = []
    for _ in range(30):
        losses = model(batch)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        totals.append(total.item())
    assert all(math.isfinite(t) for t in totals)
    assert sum(totals[-5:]) / 5 < totals[0] / 5
    model.eval()
    (result,) = model(batch)  # inference still works after training
    assert len(result["instances"]) == 20 and torch.isfinite(result["instances"].scores).all()


def test_original_initialisation(shared_dir):
    detr = _small_model(shared_dir).detr
    assert all(torch.allclose(h.bias, torch.full_like(h.bias, -math.log(99))) for h in detr.class_embed)
    assert all(torch.equal(h.weight, detr.class_embed[0].weight) for h in detr.class_embed)
    assert all(h.layers[-1].weight.abs().sum() == 0 and h.layers[-1].bias.abs().sum() == 0 for h in detr.bbox_embed)
    attn = detr.transformer.encoder.layers[0].self_attn
    bias = attn.sampling_offsets.bias.view(attn.n_heads, attn.n_levels, attn.n_points, 2)
    assert torch.allclose(bias[0, :, :, 0], torch.arange(1.0, attn.n_points + 1).expand(attn.n_levels, -1))
    assert torch.allclose(bias[1, :, 1], torch.tensor([-2.0, 0.0]).expand(attn.n_levels, -1), atol=1e-6)  # 2 heads
    assert attn.sampling_offsets.weight.abs().sum() == 0 and attn.attention_weights.weight.abs().sum() == 0
