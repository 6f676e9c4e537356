"""Image-label (weak supervision) losses and the proposals they use."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from detic_cli.errors import DeticError
from detic_cli.modeling.roi_heads.image_label_losses import add_image_box, image_label_loss, select_ws_proposals
from detic_cli.structures import Boxes, Instances

# Four proposals of an 40 x 60 (H x W) image; the last one is the whole-image box.
BOXES = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 45.0, 35.0], [0.0, 0.0, 20.0, 20.0],
                      [0.0, 0.0, 60.0, 40.0]])


def _one_hot_bce(row: torch.Tensor, label: int) -> torch.Tensor:
    target = F.one_hot(torch.tensor(label), row.shape[0]).float()
    return F.binary_cross_entropy_with_logits(row, target, reduction="sum")


def _run(mode, logits, labels, **kw):
    logits = [x.clone().requires_grad_(True) for x in logits]
    loss = image_label_loss(logits, [BOXES] * len(logits), labels, mode=mode, num_classes=4, **kw)
    loss.backward()
    return loss, [x.grad for x in logits]


def test_max_size_uses_the_largest_box_but_not_the_last():
    torch.manual_seed(0)
    logits = torch.randn(4, 5)  # C = 4, background last
    loss, (grad,) = _run("max_size", [logits], [[2]])
    assert torch.allclose(loss, _one_hot_bce(logits[1], 2))
    rows_with_grad = (grad.abs().sum(dim=1) > 0).nonzero().flatten().tolist()
    assert rows_with_grad == [1]
    assert grad[1, 4] != 0  # the background column is a negative of the one-hot target


def test_max_size_averages_labels_then_images():
    torch.manual_seed(0)
    a, b = torch.randn(4, 5), torch.randn(4, 5)
    loss, _ = _run("max_size", [a, b, torch.randn(4, 5)], [[0, 3], [1], []])
    expected = ((_one_hot_bce(a[1], 0) + _one_hot_bce(a[1], 3)) / 2 + _one_hot_bce(b[1], 1)) / 3
    assert torch.allclose(loss, expected)
    single = torch.randn(1, 5)
    loss = image_label_loss([single], [BOXES[:1]], [[3]], mode="max_size", num_classes=4)
    assert torch.allclose(loss, _one_hot_bce(single[0], 3))


def test_max_size_softmax_weak_loss():
    torch.manual_seed(0)
    logits = torch.randn(4, 5)
    loss, _ = _run("max_size", [logits], [[2]], softmax_weak_loss=True)
    assert torch.allclose(loss, F.cross_entropy(logits[1:2], torch.tensor([2])))
    with pytest.raises(DeticError, match="max_size"):
        image_label_loss([logits], [BOXES], [[2]], mode="max_score", num_classes=4, softmax_weak_loss=True)


def test_selection_modes():
    logits = torch.zeros(4, 5)
    logits[2, 1] = 3.0  # highest class-1 score -> max_score picks row 2
    logits[3, 0] = -2.0
    logits[0, 1] = 2.5
    logits[0, 4] = 4.0  # row 0: high background -> large loss; min_loss picks row 2 as well
    for mode, row in [("max_score", 2), ("first", 0), ("image", 3), ("min_loss", 2)]:
        loss, (grad,) = _run(mode, [logits], [[1]])
        assert torch.allclose(loss, _one_hot_bce(logits[row], 1)), mode
        assert (grad.abs().sum(dim=1) > 0).nonzero().flatten().tolist() == [row], mode


def test_wsddn_formula():
    torch.manual_seed(0)
    logits, prop = torch.randn(4, 5), torch.randn(4, 5)
    loss = image_label_loss([logits], [BOXES], [[2]], mode="wsddn", num_classes=4, prop_logits=[prop])
    image_score = (logits.sigmoid() * prop.softmax(dim=0)).sum(dim=0).clamp(1e-10, 1 - 1e-10)
    target = F.one_hot(torch.tensor(2), 5).float()
    assert torch.allclose(loss, F.binary_cross_entropy(image_score, target))
    with pytest.raises(DeticError, match="WITH_SOFTMAX_PROP"):
        image_label_loss([logits], [BOXES], [[2]], mode="wsod", num_classes=4)


def test_unknown_mode_and_bad_labels():
    with pytest.raises(DeticError, match="max_size.*max_score"):
        image_label_loss([torch.zeros(4, 5)], [BOXES], [[1]], mode="biggest", num_classes=4)
    with pytest.raises(ValueError, match="outside"):
        image_label_loss([torch.zeros(4, 5)], [BOXES], [[4]], mode="first", num_classes=4)


def test_dynamic_classifier_remap_and_empty_images():
    torch.manual_seed(0)
    logits = torch.randn(4, 3)  # K = 2 sampled classes: [3, 1]
    cls_id_map = torch.tensor([2, 1, 2, 0, 2])
    loss = image_label_loss([logits], [BOXES], [[3]], mode="max_size", num_classes=4, cls_id_map=cls_id_map)
    assert torch.allclose(loss, _one_hot_bce(logits[1], 0))
    with pytest.raises(ValueError, match="column"):
        image_label_loss([logits], [BOXES], [[2]], mode="max_size", num_classes=4, cls_id_map=cls_id_map)
    empty = image_label_loss([torch.zeros(0, 5)], [torch.zeros(0, 4)], [[1]], mode="max_size", num_classes=4)
    assert empty.item() == 0.0
    assert image_label_loss([], [], [], mode="max_size", num_classes=4).item() == 0.0


def _proposals() -> Instances:
    boxes = torch.tensor([[-5.0, 2.0, 30.0, 50.0], [1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 8.0, 8.0]], requires_grad=True)
    return Instances((40, 60), proposal_boxes=Boxes(boxes), objectness_logits=torch.tensor([3.0, 2.0, 1.0]))


def test_add_image_box():
    p = _proposals()
    full, half = add_image_box([p])[0], add_image_box([p], image_box_size=0.5)[0]
    assert len(p) == 3 and len(full) == 4
    assert full.proposal_boxes.tensor[-1].tolist() == [0.0, 0.0, 60.0, 40.0]
    assert half.proposal_boxes.tensor[-1].tolist() == [15.0, 10.0, 45.0, 30.0]
    assert full.objectness_logits.tolist() == [3.0, 2.0, 1.0, 1.0]


def test_select_ws_proposals():
    p = _proposals()
    (top,) = select_ws_proposals([p], 2)
    assert top.proposal_boxes.tensor.tolist() == [[0.0, 2.0, 30.0, 40.0], [1.0, 1.0, 3.0, 3.0]]
    assert not top.proposal_boxes.tensor.requires_grad
    assert p.proposal_boxes.tensor[0, 0].item() == -5.0  # input untouched
    (with_image,) = select_ws_proposals([p], 1, add_image=True)
    assert with_image.proposal_boxes.tensor.tolist() == [[0.0, 2.0, 30.0, 40.0], [0.0, 0.0, 60.0, 40.0]]
    assert with_image.objectness_logits.tolist() == [3.0, 1.0]
