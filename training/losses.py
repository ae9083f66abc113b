"""Map losses of Sec. IV-E2 and the classifier's BCE.

Every map loss takes ``pred`` and ``target`` of shape (N, 1, H, W) with values in [0, 1] and returns
a scalar mean over the batch. L1 is the default (Table IV: the regression losses suit gray-scale maps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fakelocator.errors import FakeLocatorError

_EPS = 1e-6


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 8: mean |pred − target|."""
    return (pred - target).abs().mean()


def l2_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 9: mean (pred − target)²."""
    return (pred - target).pow(2).mean()


def bce_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel-wise binary cross-entropy with soft targets, mean ``−y log p − (1 − y) log(1 − p)``.

    Not one of the paper's losses. Its gradient with respect to the sigmoid's input is ``p − y``,
    which does not vanish when the map starts saturated near 0, as L1's and L2's do (they are
    scaled by ``p(1 − p)``); a compact model trained from scratch learns much sooner with it.
    """
    return F.binary_cross_entropy(pred.clamp(_EPS, 1 - _EPS), target)


def focal_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Eqs. 10–11 with soft targets: the binary focal loss weighted by target and 1 − target.

    For a pixel with target y, ``y·α(1−p)^γ·(−log p) + (1−y)·(1−α)p^γ·(−log(1−p))``; for y ∈ {0, 1}
    this is exactly −α_t (1 − p_t)^γ log p_t.
    """
    p = pred.clamp(_EPS, 1 - _EPS)
    pos = target * alpha * (1 - p).pow(gamma) * -torch.log(p)
    neg = (1 - target) * (1 - alpha) * p.pow(gamma) * -torch.log(1 - p)
    return (pos + neg).mean()


def dice_loss(pred: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Eq. 12 as a loss: 1 − soft Dice per image, averaged; ``smooth`` keeps all-zero pairs at 0 loss."""
    p, t = pred.flatten(1), target.flatten(1)
    dice = (2 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)
    return (1 - dice).mean()


MAP_LOSSES = {"l1": l1_loss, "l2": l2_loss, "focal": focal_loss, "dice": dice_loss, "bce": bce_loss}


@dataclass(frozen=True)
class LossConfig:
    """``map`` names the map loss; ``classifier_weight`` scales the classifier's BCE term."""

    map: str = "l1"
    classifier_weight: float = 1.0

    def __post_init__(self):
        if self.map not in MAP_LOSSES:
            raise FakeLocatorError(f"unknown map loss {self.map!r}; choose one of {', '.join(MAP_LOSSES)}")
        if self.classifier_weight < 0:
            raise FakeLocatorError("classifier_weight must be >= 0")


def total_loss(outputs: dict, target_map: torch.Tensor, label: torch.Tensor, config: LossConfig) -> dict[str, torch.Tensor]:
    """{"loss", "map", "cls"}: the map loss plus ``classifier_weight`` × BCE(logit, label) when there is a classifier."""
    map_term = MAP_LOSSES[config.map](outputs["map"], target_map)
    logit = outputs.get("logit")
    if logit is None or config.classifier_weight == 0:
        cls_term = torch.zeros((), device=map_term.device)
    else:
        cls_term = F.binary_cross_entropy_with_logits(logit.view(-1), label.float().view(-1))
    return {"loss": map_term + config.classifier_weight * cls_term, "map": map_term, "cls": cls_term}
