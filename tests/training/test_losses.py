import math

import pytest
import torch

from fakelocator.errors import FakeLocatorError
from fakelocator.training.losses import LossConfig, bce_loss, dice_loss, focal_loss, l1_loss, l2_loss, total_loss

PRED = torch.tensor([0.9, 0.2, 0.5, 0.0]).view(1, 1, 2, 2)
GT = torch.tensor([1.0, 0.0, 0.25, 0.0]).view(1, 1, 2, 2)


def test_l1_and_l2_are_the_mean_absolute_and_squared_errors():
    assert l1_loss(PRED, GT).item() == pytest.approx((0.1 + 0.2 + 0.25 + 0) / 4)
    assert l2_loss(PRED, GT).item() == pytest.approx((0.01 + 0.04 + 0.0625 + 0) / 4)


def test_focal_matches_minus_alpha_t_one_minus_pt_gamma_log_pt_for_hard_labels():
    pred = torch.tensor([0.9, 0.2]).view(1, 1, 1, 2)
    gt = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    a, g = 0.25, 2.0
    expected = (a * (1 - 0.9) ** g * -math.log(0.9) + (1 - a) * (1 - 0.8) ** g * -math.log(0.8)) / 2
    assert focal_loss(pred, gt, alpha=a, gamma=g).item() == pytest.approx(expected, rel=1e-5)


def test_bce_is_the_soft_target_cross_entropy_and_its_gradient_survives_a_saturated_sigmoid():
    expected = -sum(y * math.log(p) + (1 - y) * math.log(1 - p) for p, y in [(0.9, 1), (0.2, 0), (0.5, 0.25)])
    expected += -math.log(1 - 1e-6)  # p = 0 is clamped
    assert bce_loss(PRED, GT).item() == pytest.approx(expected / 4, rel=1e-5)

    logit = torch.full((1, 1, 1, 1), -4.0, requires_grad=True)  # the map head's initial bias
    target = torch.ones(1, 1, 1, 1)
    bce_loss(torch.sigmoid(logit), target).backward()
    bce_grad = logit.grad.item()
    logit.grad = None
    l1_loss(torch.sigmoid(logit), target).backward()
    assert bce_grad == pytest.approx(torch.sigmoid(torch.tensor(-4.0)).item() - 1, rel=1e-4)
    assert abs(bce_grad) > 50 * abs(logit.grad.item())


def test_dice_is_one_minus_twice_the_overlap_over_the_sizes():
    smooth = 1.0
    inter = 0.9 * 1 + 0.5 * 0.25
    expected = 1 - (2 * inter + smooth) / (PRED.sum().item() + GT.sum().item() + smooth)
    assert dice_loss(PRED, GT).item() == pytest.approx(expected, rel=1e-6)
    assert dice_loss(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3)).item() == 0


def test_total_loss_adds_the_weighted_classifier_bce():
    logit = torch.tensor([[2.0]])
    out = {"map": PRED, "logit": logit}
    parts = total_loss(out, GT, torch.tensor([1]), LossConfig(map="l1", classifier_weight=0.5))
    bce = math.log(1 + math.exp(-2.0))
    assert parts["cls"].item() == pytest.approx(bce, rel=1e-6)
    assert parts["loss"].item() == pytest.approx(parts["map"].item() + 0.5 * bce, rel=1e-6)
    no_cl = total_loss({"map": PRED, "logit": None}, GT, torch.tensor([1]), LossConfig())
    assert no_cl["loss"].item() == pytest.approx(l1_loss(PRED, GT).item())


def test_unknown_losses_are_refused():
    with pytest.raises(FakeLocatorError, match="unknown map loss"):
        LossConfig(map="ssim")
