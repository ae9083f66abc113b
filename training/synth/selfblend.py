"""Self-blending (Self-Blended Images, Shiohara & Yamasaki 2022; Face X-ray, Li et al. 2020).

The candidate is the image itself, changed the way a face swap's source differs from its target —
resampled, colour-shifted, re-encoded, blurred or sharpened, slightly moved — and the caller blends
it back through a soft mask. What the model can learn from it is the blending boundary and the
statistics that differ across it, not any generator. Each function maps a uint8 (H, W, 3) RGB image
and a ``numpy.random.Generator`` to a uint8 image of the same size.
"""

from __future__ import annotations

import math

import numpy as np

from fakelocator.training.synth.post import jpeg_roundtrip
from fakelocator.training.synth.sampling import log_uniform

_INTERP = ("nearest", "linear", "cubic", "area", "lanczos")


def _flag(name: str) -> int:
    import cv2

    return {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
            "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}[name]


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def resample(image: np.ndarray, rng: np.random.Generator, factor: tuple[float, float] = (1.15, 2.0)) -> np.ndarray:
    """Down by a mild non-integer factor and back up, each with a drawn interpolation."""
    import cv2

    h, w = image.shape[:2]
    f = log_uniform(rng, *factor)
    down = ("area", "linear", "cubic")[int(rng.integers(3))]
    up = ("linear", "cubic", "lanczos")[int(rng.integers(3))]
    small = cv2.resize(image, (max(2, round(w / f)), max(2, round(h / f))), interpolation=_flag(down))
    return cv2.resize(small, (w, h), interpolation=_flag(up))


def colour_shift(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, channel gains and a hue rotation, each mild (SBI's source-target jitter)."""
    x = image.astype(np.float32)
    luma = x @ np.asarray((0.299, 0.587, 0.114), np.float32)
    angle = rng.normal(0, 0.05) * math.pi  # hue: rotate the chroma plane of YCbCr
    cb, cr = (x[..., 2] - luma) * 0.564, (x[..., 0] - luma) * 0.713
    ca, sa = math.cos(angle), math.sin(angle)
    cb, cr = cb * ca - cr * sa, cb * sa + cr * ca
    sat = math.exp(rng.normal(0, 0.1))
    cb, cr = cb * sat, cr * sat
    contrast = math.exp(rng.normal(0, 0.06))
    luma = (luma - luma.mean()) * contrast + luma.mean() + rng.normal(0, 5.0)
    r, b = luma + cr / 0.713, luma + cb / 0.564
    g = (luma - 0.299 * r - 0.114 * b) / 0.587
    out = np.stack([r, g, b], axis=-1) * rng.uniform(0.96, 1.04, size=3).astype(np.float32)
    return _u8(out)


def reencode(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A JPEG round trip at a quality (25–85) unlike the surroundings'."""
    return jpeg_roundtrip(image, int(rng.integers(25, 86)))


def blur_sharpen(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian blur (σ 0.5–1.6) or an unsharp mask (amount 0.3–1.5)."""
    import cv2

    sigma = rng.uniform(0.5, 1.6)
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    if rng.random() < 0.5:
        return blurred
    amount = rng.uniform(0.3, 1.5)
    x = image.astype(np.float32)
    return _u8(x + amount * (x - blurred.astype(np.float32)))


def smooth(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Edge-preserving smoothing, as beauty filters do: a bilateral filter or a median, partly mixed
    back with the original."""
    import cv2

    if rng.random() < 0.7:
        out = cv2.bilateralFilter(image, int(rng.choice((5, 7))), rng.uniform(15, 45), rng.uniform(2, 6))
    else:
        out = cv2.medianBlur(image, 3)
    keep = rng.uniform(0.0, 0.4)
    return _u8(out.astype(np.float32) + keep * (image.astype(np.float32) - out))


def warp(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A slight sub-pixel shift (±1.5 px), scale (±3 %) and rotation (±1.5°), resampled linearly or
    cubically."""
    import cv2

    h, w = image.shape[:2]
    scale = math.exp(rng.uniform(-0.03, 0.03))
    angle = rng.uniform(-1.5, 1.5)
    m = cv2.getRotationMatrix2D((w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.1, 0.1) * h), angle, scale)
    m[:, 2] += rng.uniform(-1.5, 1.5, size=2)
    flag = (cv2.INTER_LINEAR, cv2.INTER_CUBIC)[int(rng.integers(2))]
    return cv2.warpAffine(image, m, (w, h), flags=flag, borderMode=cv2.BORDER_REFLECT_101)


def sbi(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The SBI recipe: a colour shift and/or a frequency change (resample, blur or sharpen), then
    (often) a slight move; at least one of them."""
    u = rng.random(4)
    out = image
    changed = False
    if u[0] < 0.6:
        out, changed = colour_shift(out, rng), True
    if u[1] < 0.6:
        op = (resample, blur_sharpen)[int(rng.integers(2))]
        out, changed = op(out, rng), True
    if u[2] < 0.5 or not changed:
        out = warp(out, rng)
    return out
