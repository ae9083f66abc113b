"""Attribute-like edits (hair colour, lighting, hue…) applied to the decoder's latent image.

A GAN changes an attribute in its feature maps and the decoder renders the change, so the edit is
applied to the encoder's lowest-resolution image and reaches the output only through the upsampling
decoder: it carries the decoder's texture like everything else the decoder makes. Each edit's
parameter is solved (by bisection) so that the mean ground-truth change inside the region — Eq. 7's
luma-weighted absolute difference — hits a drawn target strength.
"""

from __future__ import annotations

import math

import numpy as np

LUMA = np.asarray((0.299, 0.587, 0.114), np.float32)

#: Hair- and skin-like target colours for ``tint`` (RGB in [0, 1]).
PALETTE = {
    "blond": (0.86, 0.74, 0.47), "black": (0.10, 0.09, 0.09), "brown": (0.42, 0.27, 0.16),
    "gray": (0.66, 0.66, 0.66), "red": (0.62, 0.22, 0.12), "pale": (0.93, 0.82, 0.76),
    "tan": (0.66, 0.46, 0.33), "blue": (0.20, 0.32, 0.62), "green": (0.25, 0.50, 0.30),
}


def _apply(kind: str, x: np.ndarray, p: float, sign: float, target, weights) -> np.ndarray:
    """Edit ``x`` (h, w, 3) float32 in [0, 1] with parameter ``p`` >= 0 (0 is the identity)."""
    if kind == "brightness":
        y = x + sign * p
    elif kind == "gamma":
        y = np.power(np.maximum(x, 0.0), math.exp(sign * 2.0 * p))
    elif kind == "contrast":
        mean = (x * weights[..., None]).sum((0, 1)) / max(float(weights.sum()), 1e-6)
        y = mean + (x - mean) * math.exp(sign * 2.0 * p)
    elif kind == "saturation":
        luma = (x @ LUMA)[..., None]
        y = luma + (x - luma) * math.exp(sign * 3.0 * p)
    elif kind == "hue":
        # rotate the chroma plane of YCbCr (BT.601) by an angle
        luma = x @ LUMA
        cb, cr = (x[..., 2] - luma) * 0.564, (x[..., 0] - luma) * 0.713
        a = sign * math.pi * p
        cb, cr = cb * math.cos(a) - cr * math.sin(a), cb * math.sin(a) + cr * math.cos(a)
        r, b = luma + cr / 0.713, luma + cb / 0.564
        g = (luma - 0.299 * r - 0.114 * b) / 0.587
        y = np.stack([r, g, b], axis=-1)
    elif kind == "tint":
        mean = (x * weights[..., None]).sum((0, 1)) / max(float(weights.sum()), 1e-6)
        y = x + p * (np.asarray(target, np.float32) - mean)
    else:
        raise ValueError(f"unknown edit {kind!r}")
    return np.clip(y, 0.0, 1.0).astype(np.float32)


def _strength(x, y, weights) -> float:
    gt = np.abs(y - x) @ LUMA
    return float((gt * weights).sum() / max(float(weights.sum()), 1e-6))


def apply_edit(x: np.ndarray, weights: np.ndarray, kind: str, strength: float, rng: np.random.Generator):
    """Edit ``x`` (h, w, 3) in [0, 1] so that the ``weights``-weighted mean Eq.-7 change is ``strength``.

    Returns the edited image and a description such as ``tint:blond:+0.120``. An edit that cannot
    reach half of ``strength`` (a hue or saturation change of a gray image) gives way to a tint,
    then to a brightness change; the last one tried is applied at its largest parameter.
    """
    for k in dict.fromkeys((kind, "tint", "brightness")):
        y, desc, reached = _solve(x, weights, k, strength, rng)
        if reached >= 0.5 * strength:
            break
    return y, desc


def _solve(x, weights, kind, strength, rng):
    sign = 1.0 if rng.random() < 0.5 else -1.0
    name = kind
    target = None
    if kind == "tint":
        colour = list(PALETTE)[int(rng.integers(len(PALETTE)))]
        target, name = PALETTE[colour], f"tint:{colour}"
    elif kind in ("brightness", "gamma", "contrast"):
        # brighten dark content and darken bright content more often, so that clipping does not eat the edit
        mean = float((x @ LUMA * weights).sum() / max(float(weights.sum()), 1e-6))
        sign = 1.0 if rng.random() < 1.0 - mean else -1.0
        if kind == "gamma":
            sign = -sign
    lo, hi = 0.0, 1.0
    if _strength(x, _apply(kind, x, hi, sign, target, weights), weights) < strength:
        lo = hi
    else:
        for _ in range(14):
            mid = 0.5 * (lo + hi)
            if _strength(x, _apply(kind, x, mid, sign, target, weights), weights) < strength:
                lo = mid
            else:
                hi = mid
    p = hi
    y = _apply(kind, x, p, sign, target, weights)
    return y, f"{name}:{'+' if sign > 0 else '-'}{p:.3f}", _strength(x, y, weights)
