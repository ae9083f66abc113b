"""How well *any* map made at the model's resolution can match a ground truth at full resolution.

The model predicts a ``model_input``² map that is upsampled bilinearly to the image's size and scored
there against Eq. 7 (COSS, PSNR). Detail of the ground truth finer than a model-input pixel cannot be
reproduced. The "ceiling" prediction is the ground truth itself averaged down to the model's grid
(``INTER_AREA``) and brought back by the contract's bilinear rule; its scores bound what a perfect
model could reach on that image, and flag data whose ground truth is mostly pixel noise.
"""

from __future__ import annotations

import math

import numpy as np

from fakelocator.contract import to_full_resolution


def coss(pred: np.ndarray, gt: np.ndarray) -> float:
    """Cosine similarity of two maps taken as vectors (1 for two all-zero maps, 0 if one is)."""
    p, g = pred.astype(np.float64).ravel(), gt.astype(np.float64).ravel()
    norm = math.sqrt(float(p @ p) * float(g @ g))
    if norm == 0.0:
        return 1.0 if not p.any() and not g.any() else 0.0
    return float(p @ g) / norm


def psnr(pred: np.ndarray, gt: np.ndarray, cap: float = 100.0) -> float:
    """Peak signal-to-noise ratio in dB for maps in [0, 1] (peak 1), capped at ``cap`` for equal maps."""
    mse = float(np.mean((pred.astype(np.float64) - gt.astype(np.float64)) ** 2))
    return cap if mse <= 10 ** (-cap / 10) else -10.0 * math.log10(mse)


def ceiling(gt: np.ndarray, size: tuple[int, int] = (224, 224)) -> tuple[float, float]:
    """(COSS, PSNR) of the best-effort ``size`` map for the full-resolution ground truth ``gt`` (H, W)."""
    import cv2

    h, w = gt.shape
    small = cv2.resize(gt.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_AREA)
    pred = to_full_resolution(small, h, w)
    return coss(pred, gt), psnr(pred, gt)
