"""Region shapes for on-the-fly synthesis: soft masks (H, W) float32 in [0, 1] at the image's pixels.

``make_mask(kind, (H, W), rng, faces=())`` draws one mask; ``SHAPES`` holds the sampling weight of
every kind (``sample_shape`` draws one). Kinds:

- ``ellipse``, ``blob`` and the face parts ``face``, ``hair``, ``eyes``, ``mouth``, ``nose``: the
  regions of ``regions.make_region`` (face parts on a face box from ``faces`` when one is large
  enough, else on a random face-sized box);
- ``strokes``: one to three thick brush strokes along smooth random paths (inpainting-like edits);
- ``rectangle``: a soft-edged rotated rectangle of random aspect (copy-paste, retouch boxes);
- ``whole``: all ones (an entire synthesis).

Every mask but ``whole`` is feathered with a Gaussian whose width is a fraction of the region's
size, as ``regions`` does; a mask never comes back empty (a shape drawn outside the image falls
back to a centred ellipse).
"""

from __future__ import annotations

import math

import numpy as np

from fakelocator.training.synth.config import SynthConfig
from fakelocator.training.synth.regions import FACE_PARTS, _feather, _fill, _outline, make_region
from fakelocator.training.synth.sampling import choice, log_uniform

#: Sampling weights of the region kinds (``sample_shape``); the face parts share 0.3.
SHAPES: dict[str, float] = {
    "ellipse": 0.15, "blob": 0.15, "strokes": 0.12, "rectangle": 0.12, "whole": 0.16,
    "face": 0.08, "hair": 0.06, "eyes": 0.06, "mouth": 0.05, "nose": 0.05,
}

#: The region-size rules of the ``regions`` kinds (area 1.5–45 % of the image, feather 4–15 %).
_CFG = SynthConfig()


def sample_shape(rng: np.random.Generator, weights: dict[str, float] | None = None) -> str:
    """A region kind drawn from ``weights`` (default ``SHAPES``)."""
    return choice(rng, weights or SHAPES)


def _strokes(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """1–3 thick strokes: each a polyline through a smooth random walk, drawn antialiased."""
    import cv2

    side = min(h, w)
    binary = np.zeros((h, w), np.uint8)
    thickness = 0.0
    for _ in range(int(rng.integers(1, 4))):
        thickness = log_uniform(rng, 0.04, 0.14) * side
        length = rng.uniform(0.3, 1.1) * side
        steps = 24
        angle = rng.uniform(0, 2 * math.pi)
        turn = rng.normal(0, 0.25, size=steps).cumsum()  # a smoothly bending direction
        seg = length / steps
        x, y = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
        pts = [(x, y)]
        for t in turn:
            x += seg * math.cos(angle + t)
            y += seg * math.sin(angle + t)
            pts.append((x, y))
        poly = np.rint(np.asarray(pts) * 16).astype(np.int32)
        cv2.polylines(binary, [poly], False, 1, thickness=max(2, int(round(thickness))), lineType=cv2.LINE_8, shift=4)
    return binary, thickness


def _rectangle(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    area = log_uniform(rng, *_CFG.region_area) * h * w
    aspect = log_uniform(rng, 0.33, 3.0)
    rw, rh = min(math.sqrt(area * aspect), 0.95 * w), min(math.sqrt(area / aspect), 0.95 * h)
    cx, cy = rng.uniform(rw / 2, w - rw / 2), rng.uniform(rh / 2, h - rh / 2)
    a = rng.uniform(-math.pi / 4, math.pi / 4) if rng.random() < 0.6 else 0.0
    ca, sa = math.cos(a), math.sin(a)
    corners = np.asarray([(-rw / 2, -rh / 2), (rw / 2, -rh / 2), (rw / 2, rh / 2), (-rw / 2, rh / 2)])
    poly = np.stack([cx + ca * corners[:, 0] - sa * corners[:, 1], cy + sa * corners[:, 0] + ca * corners[:, 1]], 1)
    return _fill((h, w), [poly]), min(rw, rh)


def make_mask(kind: str, hw: tuple[int, int], rng: np.random.Generator, faces: tuple = ()) -> np.ndarray:
    """A soft mask of ``kind`` (a key of ``SHAPES``) for an image of ``hw`` = (H, W).

    ``faces`` are (x, y, w, h) face boxes in the image, used by the face parts. Returns float32
    (H, W) in [0, 1] with at least one pixel at 1 (before feathering) inside the image.
    """
    h, w = int(hw[0]), int(hw[1])
    if h < 8 or w < 8:
        raise ValueError(f"make_mask: image size {h}x{w} is too small (at least 8x8)")
    if kind == "whole":
        return np.ones((h, w), np.float32)
    if kind in ("ellipse", "blob") or kind in FACE_PARTS:
        return make_region(kind, (h, w), rng, _CFG, tuple(faces)).mask
    if kind == "strokes":
        binary, size = _strokes(h, w, rng)
        feather = rng.uniform(0.1, 0.35) * size  # relative to the stroke's width, not its length
    elif kind == "rectangle":
        binary, size = _rectangle(h, w, rng)
        feather = rng.uniform(*_CFG.feather) * size
    else:
        raise ValueError(f"unknown region shape {kind!r}; expected one of {', '.join(SHAPES)}")
    if not binary.any():
        binary = _fill((h, w), [_outline(rng, w / 2, h / 2, w / 5, h / 5, 0.0, 0.0)])
    return _feather(binary, max(1.0, feather))
