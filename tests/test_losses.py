import math

import pytest
import torch

from plexus.training.losses import (
    LOSSES,
    bce_dice_loss,
    dice_loss,
    get_loss,
    neg_log_dice_loss,
    presence_loss,
    segmentation_loss,
    soft_dice,
    two_head_loss,
)


def _logit(p):
    p = torch.as_tensor(p, dtype=torch.float64)
    return torch.log(p / (1 - p)).float()


# Image A (2x2): probs p = [0.5, 0.5, 0.25, 0.75], truth t = [1, 0, 0, 1]
#   sum(p*t) = 0.5 + 0.75 = 1.25, sum(p) = 2, sum(t) = 2
#   smooth Dice = (2*1.25 + 1) / (2 + 2 + 1) = 3.5 / 5 = 0.7
# Image B (2x2): probs all 0.25, truth empty
#   sum(p*t) = 0, sum(p) = 1, sum(t) = 0 -> Dice = (0 + 1) / (1 + 0 + 1) = 0.5
# per image then mean: (0.7 + 0.5) / 2 = 0.6
# whole batch flattened (the write-up's Keras form): (2*1.25 + 1) / (3 + 2 + 1) = 3.5 / 6
P_A = torch.tensor([[0.5, 0.5], [0.25, 0.75]])
T_A = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
P_B = torch.full((2, 2), 0.25)
T_B = torch.zeros(2, 2)
PROBS = torch.stack([P_A, P_B])[:, None]
TARGET = torch.stack([T_A, T_B])[:, None]


def test_soft_dice_hand_computed():
    assert soft_dice(PROBS[:1], TARGET[:1]).item() == pytest.approx(0.7)
    assert soft_dice(PROBS[1:], TARGET[1:]).item() == pytest.approx(0.5)
    assert soft_dice(PROBS, TARGET).item() == pytest.approx(0.6)
    assert soft_dice(PROBS, TARGET, per_image=False).item() == pytest.approx(3.5 / 6)


def test_neg_log_dice_hand_computed():
    logits = _logit(PROBS)
    assert neg_log_dice_loss(logits[:1], TARGET[:1]).item() == pytest.approx(-math.log(0.7), abs=1e-6)
    assert neg_log_dice_loss(logits, TARGET).item() == pytest.approx(-math.log(0.6), abs=1e-6)
    assert neg_log_dice_loss(logits, TARGET, per_image=False).item() == pytest.approx(-math.log(3.5 / 6), abs=1e-6)
    assert dice_loss(logits, TARGET).item() == pytest.approx(0.4, abs=1e-6)
    # BCE of image A+B: mean over the 8 pixels of -log(p) or -log(1-p)
    bce = -(math.log(0.5) * 2 + math.log(0.75) * 2 + 4 * math.log(0.75)) / 8
    assert bce_dice_loss(logits, TARGET).item() == pytest.approx(bce + 0.4, abs=1e-6)


def test_perfect_and_disjoint():
    target = torch.zeros(2, 1, 16, 16)
    target[0, 0, 4:10, 4:10] = 1
    perfect = (target * 2 - 1) * 30  # logits: +30 on the mask, -30 elsewhere
    disjoint = -perfect
    for name, fn in LOSSES.items():
        assert fn(perfect, target).item() < 1e-3, name
        assert fn(disjoint, target).item() > 0.9, name
    assert neg_log_dice_loss(disjoint, target).item() > 2


def test_gradients_are_finite():
    logits = torch.randn(3, 1, 8, 8, requires_grad=True)
    target = (torch.rand(3, 1, 8, 8) > 0.5).float()
    target[2] = 0
    for name in LOSSES:
        logits.grad = None
        get_loss(name)(logits, target).backward()
        assert torch.isfinite(logits.grad).all(), name


def test_get_loss_unknown_lists_valid_names():
    with pytest.raises(ValueError, match="neg_log_dice"):
        get_loss("focal")


def test_segmentation_loss_reduction():
    logits = _logit(PROBS)
    assert segmentation_loss("dice", "image")(logits, TARGET).item() == pytest.approx(0.4, abs=1e-6)
    assert segmentation_loss("dice", "batch")(logits, TARGET).item() == pytest.approx(1 - 3.5 / 6, abs=1e-6)
    loss = segmentation_loss("neg_log_dice", "batch")(logits, TARGET).item()
    assert loss == pytest.approx(-math.log(3.5 / 6), abs=1e-6)
    with pytest.raises(ValueError, match="dice_reduction"):
        segmentation_loss("dice", "pixel")
    with pytest.raises(ValueError, match="valid losses"):
        segmentation_loss("bce", "batch")


def test_two_head_loss():
    target = torch.zeros(2, 1, 4, 4)
    target[0, 0, 1, 1] = 1
    seg = torch.zeros(2, 1, 4, 4)
    pres = torch.tensor([0.0, 0.0])  # p = 0.5 for both -> BCE = log 2
    assert presence_loss(pres, target).item() == pytest.approx(math.log(2))
    total = two_head_loss(seg, pres, target, neg_log_dice_loss, presence_weight=0.5)
    assert total.item() == pytest.approx(neg_log_dice_loss(seg, target).item() + 0.5 * math.log(2), abs=1e-6)
