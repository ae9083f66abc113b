"""Procedural textures: extra "real" images with no resampling in their making.

The model learns the trace that upsampling and interpolation leave, so a real source must never be
made by resizing, not even a little: every layer here is computed per pixel at the output's own
size. ``procedural_texture((H, W), rng)`` composes 2–3 of these layers through smooth masks:

- ``spectral``: 1/f^β noise (β 1–3, the range of natural images) shaped in the Fourier domain of
  the full-size image, coloured through a random 3×3 colour mix;
- ``gradient``: a smooth linear or radial colour gradient;
- ``shapes``: random filled polygons, circles, ellipses and lines, drawn antialiased by OpenCV at
  the full resolution (antialiasing is coverage, not interpolation);
- ``voronoi``: a cellular pattern (each pixel takes its nearest seed's colour, computed per pixel
  by an distance transform with labels), with an optional shading by the distance to the seed;

then sensor-like noise (per pixel, σ 0.5–2.5 grey levels). The result is uint8 RGB.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from fakelocator.training.synth.sampling import log_uniform

LAYERS = ("spectral", "gradient", "shapes", "voronoi")


def _colour(rng, n=None) -> np.ndarray:
    """Random RGB colours in [0, 1] with natural-ish saturation."""
    base = rng.uniform(0.05, 0.95, size=(n or 1, 1))
    tint = rng.normal(0, 0.18, size=(n or 1, 3))
    c = np.clip(base + tint, 0, 1).astype(np.float32)
    return c if n else c[0]


@lru_cache(maxsize=16)
def _log_frequency(h: int, w: int) -> np.ndarray:
    """log of the radial frequency of the (h, w // 2 + 1) half spectrum, DC set to 0 (cached per size)."""
    fy = np.fft.fftfreq(h).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(w).astype(np.float32)[None, :]
    f = np.sqrt(fy * fy + fx * fx)
    f[0, 0] = 1.0
    return np.log(f)


def _spectral(h: int, w: int, rng, beta: float | None = None, channels: int = 1) -> np.ndarray:
    """(h, w) (or (h, w, channels)) float32 noise with power spectrum ~ 1/f^β, zero mean and unit
    standard deviation per channel; β is drawn in 1–3 when not given."""
    from scipy import fft

    beta = rng.uniform(1.0, 3.0) if beta is None else beta
    amp = np.exp(np.float32(-beta / 2.0) * _log_frequency(h, w))
    amp[0, 0] = 0.0
    shape = (channels, h, amp.shape[1])
    # independent uniform real and imaginary parts: cheaper to draw than normals, and the filtered
    # field, a sum of many such terms, is Gaussian all the same
    spectrum = np.empty(shape, np.complex64)
    spectrum.real = rng.random(shape, np.float32)
    spectrum.imag = rng.random(shape, np.float32)
    spectrum -= np.complex64(0.5 + 0.5j)
    spectrum *= amp
    field = fft.irfft2(spectrum, s=(h, w), workers=1)  # (channels, h, w) float32
    field /= np.maximum(field.std(axis=(1, 2), keepdims=True), np.float32(1e-12))
    return field[0] if channels == 1 else np.ascontiguousarray(field.transpose(1, 2, 0))


def _spectral_layer(h, w, rng) -> np.ndarray:
    import cv2

    beta = rng.uniform(1.0, 3.0)
    fields = _spectral(h, w, rng, beta, channels=2)  # (h, w, 2): a shared and a colour-varying field
    mix = np.stack([np.full(3, rng.uniform(0.6, 1.0)), rng.normal(0, 0.35, size=3)], axis=1)  # (3, 2)
    contrast = rng.uniform(0.06, 0.22)
    return cv2.transform(fields, (contrast * mix).astype(np.float32)) + _colour(rng)


def _gradient_layer(h, w, rng) -> np.ndarray:
    yy, xx = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]
    if rng.random() < 0.5:
        a = rng.uniform(0, 2 * math.pi)
        t = xx * np.float32(math.cos(a)) + yy * np.float32(math.sin(a))
    else:
        cx, cy = rng.uniform(-0.2, 1.2) * w, rng.uniform(-0.2, 1.2) * h
        t = np.sqrt((xx - np.float32(cx)) ** 2 + (yy - np.float32(cy)) ** 2)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = _colour(rng), _colour(rng)
    return c0 + t[..., None] * (c1 - c0)


def _shapes_layer(h, w, rng) -> np.ndarray:
    import cv2

    canvas = np.empty((h, w, 3), np.float32)
    canvas[:] = _colour(rng)
    side = min(h, w)
    shift = 4
    for _ in range(int(rng.integers(3, 14))):
        colour = tuple(float(c) for c in _colour(rng))
        kind = rng.integers(4)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = log_uniform(rng, 0.03, 0.4) * side
        fx = lambda v: int(round(v * (1 << shift)))  # noqa: E731  (sub-pixel coordinates)
        if kind == 0:
            cv2.circle(canvas, (fx(cx), fx(cy)), fx(r), colour, -1, cv2.LINE_AA, shift)
        elif kind == 1:
            axes = (fx(r), fx(r * rng.uniform(0.2, 1.0)))
            cv2.ellipse(canvas, (fx(cx), fx(cy)), axes, rng.uniform(0, 180), 0, 360, colour, -1, cv2.LINE_AA, shift)
        elif kind == 2:
            n = int(rng.integers(3, 8))
            t = np.sort(rng.uniform(0, 2 * math.pi, n))
            rr = r * rng.uniform(0.4, 1.0, n)
            pts = np.stack([cx + rr * np.cos(t), cy + rr * np.sin(t)], 1)
            cv2.fillPoly(canvas, [np.rint(pts * (1 << shift)).astype(np.int32)], colour, cv2.LINE_AA, shift)
        else:
            a = rng.uniform(0, 2 * math.pi)
            p0 = (fx(cx), fx(cy))
            p1 = (fx(cx + 2 * r * math.cos(a)), fx(cy + 2 * r * math.sin(a)))
            cv2.line(canvas, p0, p1, colour, int(rng.integers(1, max(2, side // 40) + 1)), cv2.LINE_AA, shift)
    return canvas


def _voronoi_layer(h, w, rng) -> np.ndarray:
    import cv2

    n = int(log_uniform(rng, 8, 160))
    seeds = np.ones((h, w), np.uint8)
    ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
    seeds[ys, xs] = 0
    dist, labels = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, cv2.DIST_MASK_5,
                                                   labelType=cv2.DIST_LABEL_PIXEL)
    palette = _colour(rng, int(labels.max()) + 1)
    out = palette[labels]
    if rng.random() < 0.6:
        shade = dist / max(float(dist.max()), 1e-6)
        out = out * (1.0 - rng.uniform(0.1, 0.5) * shade[..., None])
    return out


_MAKERS = {"spectral": _spectral_layer, "gradient": _gradient_layer, "shapes": _shapes_layer, "voronoi": _voronoi_layer}


def procedural_texture(hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A uint8 (H, W, 3) RGB texture of ``hw`` = (H, W), made per pixel with no resampling."""
    h, w = int(hw[0]), int(hw[1])
    if h < 8 or w < 8:
        raise ValueError(f"procedural_texture: size {h}x{w} is too small (at least 8x8)")
    n = int(rng.integers(2, 4))
    kinds = [LAYERS[int(i)] for i in rng.choice(len(LAYERS), size=n, replace=True)]
    out = _MAKERS[kinds[0]](h, w, rng)
    for kind in kinds[1:]:
        layer = _MAKERS[kind](h, w, rng)
        # a smooth mask (thresholded 1/f^β field, soft edge) decides where the layer shows
        field = _spectral(h, w, rng, beta=rng.uniform(2.0, 3.5))
        edge = rng.uniform(0.05, 1.0)
        alpha = np.clip(0.5 + (field - rng.uniform(-0.8, 0.8)) / (2 * edge), 0.0, 1.0)[..., None]
        if rng.random() < 0.3:  # a translucent layer over everything
            alpha = np.full_like(alpha, rng.uniform(0.2, 0.6))
        out = out + alpha * (layer - out)
    if rng.random() < 0.5:  # multiplicative shading from a low-frequency field
        out = out * (1.0 + 0.15 * _spectral(h, w, rng, beta=3.0)[..., None])
    sigma = rng.uniform(0.5, 2.5) / 255.0  # sensor-like noise, uniform with that standard deviation
    out = out + (rng.random((h, w, 3), np.float32) - np.float32(0.5)) * np.float32(sigma * math.sqrt(12.0))
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
