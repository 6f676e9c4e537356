"""Box-predictor losses on hand-made cases: class losses (sigmoid / federated / softmax), box regression
normalisation, and the lazily read class-frequency file."""

from __future__ import annotations

import json
import math

import pytest
import torch

from detic_cli.config import load_config
from detic_cli.data.class_frequencies import read_class_image_counts
from detic_cli.errors import DeticError
from detic_cli.layers.box_transform import Box2BoxTransform
from detic_cli.modeling.builders import ModelData, build_box_losses, build_model
from detic_cli.modeling.roi_heads.box_losses import FastRCNNLosses, box_reg_loss
from detic_cli.structures import Boxes, Instances

T = Box2BoxTransform((10.0, 10.0, 5.0, 5.0))
LOGITS = torch.tensor([[2.0, -1.0, 0.5, 0.0, 3.0],
                       [0.0, 1.0, -2.0, 1.5, -3.0],
                       [-0.5, 0.2, 0.3, -1.0, 9.0]])  # C = 4, background column last (never used by sigmoid CE)
GT = torch.tensor([0, 4, 2])  # 4 = background


def _bce(x: float, t: float) -> float:
    return -(t * math.log(1 / (1 + math.exp(-x))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-x))))


def _expected_sigmoid(columns: list[int]) -> float:
    total = sum(_bce(LOGITS[r, c].item(), float(GT[r].item() == c)) for r in range(3) for c in columns)
    return total / 3


def _labelled(boxes, gt_boxes, gt_classes) -> Instances:
    return Instances((100, 100), proposal_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32)),
                     gt_boxes=Boxes(torch.tensor(gt_boxes, dtype=torch.float32)),
                     gt_classes=torch.tensor(gt_classes))


def test_sigmoid_ce_sums_foreground_columns_and_divides_by_proposals():
    loss = FastRCNNLosses(use_sigmoid_ce=True).class_loss(LOGITS, GT)
    assert loss.item() == pytest.approx(_expected_sigmoid([0, 1, 2, 3]), rel=1e-6)


def test_federated_loss_counts_only_the_sampled_classes(tmp_path):
    freq = tmp_path / "cat_info.json"
    freq.write_text(json.dumps([{"id": i + 1, "image_count": n} for i, n in enumerate([5, 0, 7, 9])]))
    losses = FastRCNNLosses(use_fed_loss=True, fed_loss_num_cat=3, class_counts=read_class_image_counts(freq))
    # present: 0, 2 and the background 4 = 3 classes, so nothing more is drawn
    assert losses.class_loss(LOGITS, GT).item() == pytest.approx(_expected_sigmoid([0, 2]), rel=1e-6)
    torch.manual_seed(0)
    losses = FastRCNNLosses(use_fed_loss=True, fed_loss_num_cat=4, class_counts=read_class_image_counts(freq))
    # one more class is drawn by frequency among {1 (count 0: never), 3}: always 3
    assert losses.class_loss(LOGITS, GT).item() == pytest.approx(_expected_sigmoid([0, 2, 3]), rel=1e-6)
    assert losses.freq_weight(6, torch.device("cpu")).tolist() == pytest.approx(
        [5 ** 0.5, 0.0, 7 ** 0.5, 3.0, 0.0, 0.0])  # padded with zeros to the vocabulary size


def test_ignore_zero_cats_drops_never_seen_classes(tmp_path):
    freq = tmp_path / "cat_info.json"
    freq.write_text(json.dumps([{"id": i, "image_count": n} for i, n in enumerate([3, 0, 1, 2])]))
    loss = FastRCNNLosses(ignore_zero_cats=True, class_counts=read_class_image_counts(freq)).class_loss(LOGITS, GT)
    assert loss.item() == pytest.approx(_expected_sigmoid([0, 2, 3]), rel=1e-6)


def test_softmax_ce_is_the_mean_cross_entropy():
    loss = FastRCNNLosses(use_sigmoid_ce=False).class_loss(LOGITS, GT)
    expected = sum(torch.logsumexp(LOGITS[r], 0).item() - LOGITS[r, GT[r]].item() for r in range(3)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_smooth_l1_box_loss_on_foreground_divided_by_all_proposals():
    # proposal (0,0,10,10) -> gt (1,1,11,11): deltas (10 * 1/10, 10 * 1/10, 0, 0) = (1, 1, 0, 0)
    boxes = torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]])
    gt = torch.tensor([[1.0, 1, 11, 11], [50, 50, 60, 60]])
    deltas = torch.tensor([[0.5, 0.0, 0.0, 0.25], [7.0, 7.0, 7.0, 7.0]], requires_grad=True)
    loss = box_reg_loss(boxes, gt, deltas, torch.tensor([3, 5]), num_classes=5, box2box_transform=T)
    assert loss.item() == pytest.approx((0.5 + 1.0 + 0.0 + 0.25) / 2)
    loss.backward()
    assert deltas.grad[1].abs().sum() == 0  # the background row does not count
    beta = box_reg_loss(boxes, gt, deltas.detach(), torch.tensor([3, 5]), num_classes=5, box2box_transform=T,
                        smooth_l1_beta=1.0)
    assert beta.item() == pytest.approx((0.5 * 0.25 + 0.5 * 1.0 + 0 + 0.5 * 0.0625) / 2)


def test_giou_box_loss_on_decoded_boxes():
    boxes = torch.tensor([[0.0, 0, 10, 10]])
    gt = torch.tensor([[1.0, 1, 11, 11]])
    loss = box_reg_loss(boxes, gt, torch.zeros(1, 4), torch.tensor([0]), num_classes=2, box2box_transform=T,
                        loss_type="giou")
    iou = 81 / 119
    assert loss.item() == pytest.approx(1 - (iou - (121 - 119) / 121), rel=1e-5)


def test_stage_losses_from_labelled_proposals():
    props = [_labelled([[0, 0, 10, 10], [50, 50, 60, 60]], [[1, 1, 11, 11], [50, 50, 60, 60]], [0, 4]),
             _labelled([[20, 20, 40, 40]], [[20, 20, 40, 40]], [2])]
    out = FastRCNNLosses()(LOGITS, torch.zeros(3, 4), props, T)
    assert set(out) == {"loss_cls", "loss_box_reg"}
    assert out["loss_cls"].item() == pytest.approx(_expected_sigmoid([0, 1, 2, 3]), rel=1e-6)
    assert out["loss_box_reg"].item() == pytest.approx(2.0 / 3)
    empty = FastRCNNLosses()(torch.zeros(0, 5), torch.zeros(0, 4), [], T)
    assert empty["loss_cls"].item() == 0 and empty["loss_box_reg"].item() == 0


def test_class_counts_are_given_to_the_builder_and_only_training_needs_them(tmp_path, monkeypatch, shared_dir):
    from detic_cli.engine.build import training_model_data

    monkeypatch.setenv("DETIC_DATASETS", str(tmp_path))
    cfg = load_config(shared_dir / "detic-reference/configs/BoxSup-C2_LCOCO_CLIP_R18_640b32_4x.yaml")
    build_model(cfg)  # inference never needs the file
    losses = build_box_losses(cfg)
    with pytest.raises(DeticError, match=r"^MODEL.ROI_BOX_HEAD.USE_FED_LOSS .*CAT_FREQ_PATH.*without class_counts$"):
        losses.class_loss(LOGITS, GT)
    with pytest.raises(DeticError, match="lvis_v1_train_cat_info.json.*detic data prepare lvis-norare"):
        training_model_data(cfg)  # the engine reads the file (through detic_cli.data) for training
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata/lvis_v1_train_cat_info.json").write_text(
        json.dumps([{"id": i, "image_count": 1} for i in range(9)]))
    counts = training_model_data(cfg).class_counts
    assert counts.tolist() == [1.0] * 9
    model = build_model(cfg, ModelData(class_counts=counts))
    assert model.roi_heads.losses.class_counts is counts
    with pytest.raises(DeticError, match="list 9 classes but the vocabulary has 4"):
        build_box_losses(cfg, counts).class_loss(LOGITS, GT)


def test_unsupported_box_loss_fails_at_training_time_only():
    losses = FastRCNNLosses(box_reg_loss_type="diou")
    with pytest.raises(DeticError, match="BBOX_REG_LOSS_TYPE 'diou'"):
        losses(LOGITS, torch.zeros(3, 4), [], T)


def test_bbox_mlp_starts_as_detic_initialises_it():
    """bbox_pred[0]: c2_xavier_fill (kaiming uniform, a=1: bound sqrt(3 / fan_in)) and a zero bias."""
    import math

    import torch

    from detic_cli.layers.box_transform import Box2BoxTransform
    from detic_cli.modeling.roi_heads.fast_rcnn import DeticBoxPredictor

    torch.manual_seed(0)
    predictor = DeticBoxPredictor(input_size=256, num_classes=3, box2box_transform=Box2BoxTransform((10, 10, 5, 5)))
    first = predictor.bbox_pred[0]
    assert torch.count_nonzero(first.bias) == 0
    bound = math.sqrt(3.0 / 256)
    assert first.weight.abs().max() <= bound
    assert first.weight.abs().max() > 0.9 * bound  # torch's default would stay under 1 / sqrt(256)
