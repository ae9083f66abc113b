"""Where a partial manipulation happens: soft-edged masks in [0, 1] at the image's full resolution.

Region kinds (the manifest's ``property``):

- ``ellipse``: a rotated ellipse with a wobbly outline;
- ``blob``: a thresholded smooth random field, one or a few irregular pieces;
- ``face``, ``hair``, ``eyes``, ``mouth``, ``nose``: the part itself where the face mesh parsed the
  view (``face_masks.py``: the same masks as the attention's parser; grown by a random margin), else
  face-part-like shapes laid out relative to a face box — a detected face when one is in the view
  and large enough, else a plausibly sized box placed at random (the shapes, not a face, are what
  the model is shown).

Every mask is feathered with a Gaussian whose width is a fraction (``feather``) of the region's size,
the way a GAN's skip connections blend an edit into its surroundings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fakelocator.training.synth.config import SynthConfig
from fakelocator.training.synth.sampling import log_uniform

FACE_PARTS = ("face", "hair", "eyes", "mouth", "nose")

# Face-part ellipses in face-box units: (centre u, centre v, half-width, half-height), u, v in [0, 1]
# across the box that a frontal-face detector returns (eyebrows to chin).
_FACE = (0.5, 0.56, 0.46, 0.62)
_EYE_L, _EYE_R = (0.30, 0.37, 0.14, 0.075), (0.70, 0.37, 0.14, 0.075)
_EYE_BAND = (0.5, 0.37, 0.42, 0.10)
_NOSE = (0.5, 0.56, 0.11, 0.15)
_MOUTH = (0.5, 0.78, 0.21, 0.085)
_HAIR_OUTER = (0.5, 0.38, 0.80, 0.80)

#: Approximate area of each part in units of the face box's area, to size boxes for a target area.
_PART_AREA = {"face": math.pi * 0.46 * 0.62, "hair": 1.0, "eyes": 2 * math.pi * 0.14 * 0.075,
              "mouth": math.pi * 0.21 * 0.085, "nose": math.pi * 0.11 * 0.15}


@dataclass(frozen=True)
class Region:
    mask: np.ndarray  # float32 (H, W) in [0, 1]
    kind: str
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1): where the mask is non-zero
    face_box: tuple[float, float, float, float] | None  # (x, y, w, h) the parts were laid out on
    face_source: str  # "mesh", "detected", "random" or "" for non-face regions

    @property
    def area_fraction(self) -> float:
        return float(self.mask.sum(dtype=np.float64) / self.mask.size)


def _outline(rng: np.random.Generator, cx, cy, ax, ay, angle, wobble, n=96) -> np.ndarray:
    """Polygon (n, 2) of an ellipse whose radius is modulated by a few low harmonics."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones_like(t)
    for k in range(2, 6):
        r += wobble * rng.normal() / k * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.5, 1.5)
    x, y = ax * r * np.cos(t), ay * r * np.sin(t)
    ca, sa = math.cos(angle), math.sin(angle)
    return np.stack([cx + ca * x - sa * y, cy + sa * x + ca * y], axis=1)


def _fill(hw: tuple[int, int], polygons, subtract=()) -> np.ndarray:
    import cv2

    shift = 4  # sub-pixel vertex precision
    binary = np.zeros(hw, np.uint8)
    to_int = lambda p: np.rint(p * (1 << shift)).astype(np.int32)  # noqa: E731
    cv2.fillPoly(binary, [to_int(p) for p in polygons], 1, lineType=cv2.LINE_8, shift=shift)
    if subtract:
        cv2.fillPoly(binary, [to_int(p) for p in subtract], 0, lineType=cv2.LINE_8, shift=shift)
    return binary


def _feather(binary: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-soften a 0/1 mask, computing only around its support."""
    import cv2

    mask = np.zeros(binary.shape, np.float32)
    ys, xs = np.nonzero(binary)
    if ys.size == 0:
        return mask
    h, w = binary.shape
    pad = int(math.ceil(3 * sigma)) + 1
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, h)
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, w)
    patch = binary[y0:y1, x0:x1].astype(np.float32)
    mask[y0:y1, x0:x1] = cv2.GaussianBlur(patch, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT)
    np.clip(mask, 0.0, 1.0, out=mask)
    mask[mask < 1.0 / 1024] = 0.0  # the Gaussian's far tails change no 8-bit pixel anyway
    return mask


def _support_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return 0, 0, 0, 0
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def _ellipse(h, w, rng, cfg):
    area = log_uniform(rng, *cfg.region_area) * h * w
    e = log_uniform(rng, 0.4, 2.5)
    ax, ay = math.sqrt(area / math.pi * e), math.sqrt(area / math.pi / e)
    ax, ay = min(ax, 0.6 * w), min(ay, 0.6 * h)
    cx = rng.uniform(min(0.6 * ax, w / 2), max(w - 0.6 * ax, w / 2))
    cy = rng.uniform(min(0.6 * ay, h / 2), max(h - 0.6 * ay, h / 2))
    poly = _outline(rng, cx, cy, ax, ay, rng.uniform(0, np.pi), rng.uniform(0.0, 0.25))
    return _fill((h, w), [poly]), math.sqrt(area)


def _blob(h, w, rng, cfg):
    import cv2

    area = log_uniform(rng, *cfg.region_area) * h * w
    e = log_uniform(rng, 0.5, 2.0)
    bw = int(min(w, max(8, math.sqrt(area * e) * 1.7)))
    bh = int(min(h, max(8, math.sqrt(area / e) * 1.7)))
    cells = int(rng.integers(3, 8))
    noise = rng.normal(size=(cells + 2, cells + 2)).astype(np.float32)
    field = cv2.resize(noise, (bw, bh), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:bh, 0:bw].astype(np.float32)
    d2 = ((xx - bw / 2) / (bw / 2)) ** 2 + ((yy - bh / 2) / (bh / 2)) ** 2
    field += 1.5 * (1.0 - d2)  # centre-weighted, so the pieces cluster into a blob
    target = min(area, 0.9 * bw * bh)
    threshold = np.quantile(field, 1.0 - target / (bw * bh))
    x0, y0 = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
    binary = np.zeros((h, w), np.uint8)
    binary[y0:y0 + bh, x0:x0 + bw] = field > threshold
    return binary, math.sqrt(area)


def _part_polygons(kind, box, rng):
    fx, fy, fw, fh = box

    def ell(spec, wobble=0.08):
        u, v, a, b = spec
        j = rng.normal(0, 0.03, size=2)
        s = math.exp(rng.normal(0, 0.08))
        return _outline(rng, fx + (u + j[0]) * fw, fy + (v + j[1]) * fh, a * s * fw, b * s * fh,
                        rng.normal(0, 0.08), wobble)

    if kind == "face":
        return [ell(_FACE)], []
    if kind == "eyes":
        return ([ell(_EYE_BAND)] if rng.random() < 0.4 else [ell(_EYE_L), ell(_EYE_R)]), []
    if kind == "mouth":
        return [ell(_MOUTH)], []
    if kind == "nose":
        return [ell(_NOSE)], []
    # hair: a band around the top of the head, the face cut out, long or short below the ears
    outer = ell(_HAIR_OUTER, wobble=0.2)
    chin = fy + rng.uniform(0.45, 1.3) * fh
    outer[:, 1] = np.minimum(outer[:, 1], chin)
    face = ell((0.5, 0.62, 0.47, 0.6))
    return [outer], [face]


def _face_box(h, w, kind, faces, rng, cfg) -> tuple[tuple[float, float, float, float], str]:
    """A detected face large enough for ``kind``, else a random plausible box of a size that gives
    the part at least the minimum region area."""
    min_area, max_area = cfg.region_area[0] * h * w, cfg.region_area[1] * h * w
    part = _PART_AREA[kind]
    usable = [f for f in faces if f[2] >= cfg.face_region_min_side * min(h, w)
              and part * f[2] * f[3] >= cfg.face_part_min_area * h * w]
    if usable:
        return usable[int(rng.integers(len(usable)))], "detected"
    side_lo = max(math.sqrt(min_area / part), 0.25 * min(h, w))
    side_hi = min(math.sqrt(max_area / part), 0.95 * min(h, w))
    side = rng.uniform(side_lo, max(side_lo, side_hi))
    bw, bh = side, side * rng.uniform(1.0, 1.25)
    x = rng.uniform(-0.1 * bw, max(w - 0.9 * bw, -0.1 * bw))
    y = rng.uniform(-0.1 * bh, max(h - 0.9 * bh, -0.1 * bh))
    return (x, y, bw, bh), "random"


#: A mesh part grows by up to this fraction of its own size (square root of its area): GAN edits
#: of a part reach a little past its contour (eyelids, the skin around the lips).
MESH_GROWTH = (0.0, 0.2)


def _mesh_part(kind, labels, rng, cfg):
    """(binary mask, size, face box (x, y, w, h)) of a face part from the view's mesh labels, or
    None when the part is missing or under ``face_part_min_area`` of the image (the rule a detected
    face's box layout follows too)."""
    import cv2

    from fakelocator.training.synth.face_masks import PART_LABELS, part_mask

    h, w = labels.shape
    part = part_mask(labels, kind)
    area = float(part.sum())
    if area < cfg.face_part_min_area * h * w:
        return None
    size = math.sqrt(area)
    grow = int(round(rng.uniform(*MESH_GROWTH) * size))
    binary = part.astype(np.uint8)
    if grow > 0:
        binary = cv2.dilate(binary, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    face = part_mask(labels, "face")
    x0, y0, x1, y1 = _support_box(face) if face.any() else _support_box(part)
    return binary, math.sqrt(float(binary.sum())), (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def make_region(kind: str, hw: tuple[int, int], rng: np.random.Generator, cfg: SynthConfig,
                faces: tuple = (), labels: np.ndarray | None = None) -> Region:
    """A soft region of ``kind`` on an image of ``hw`` = (H, W); ``faces`` are (x, y, w, h) boxes in
    it; ``labels`` the view's canonical face-parsing labels (``face_masks.view_labels``) or None."""
    h, w = hw
    face_box, face_source = None, ""
    mesh = _mesh_part(kind, labels, rng, cfg) if kind in FACE_PARTS and labels is not None else None
    if mesh is not None:
        binary, size, face_box = mesh
        face_source = "mesh"
    elif kind == "ellipse":
        binary, size = _ellipse(h, w, rng, cfg)
    elif kind == "blob":
        binary, size = _blob(h, w, rng, cfg)
    elif kind in FACE_PARTS:
        face_box, face_source = _face_box(h, w, kind, faces, rng, cfg)
        keep, cut = _part_polygons(kind, face_box, rng)
        binary = _fill((h, w), keep, cut)
        size = math.sqrt(max(float(binary.sum()), 1.0))
    else:
        raise ValueError(f"unknown region kind {kind!r}")
    if not binary.any():  # a shape drawn wholly outside the image: fall back to a centred ellipse
        binary = _fill((h, w), [_outline(rng, w / 2, h / 2, w / 5, h / 5, 0.0, 0.0)])
        size = math.sqrt(float(binary.sum()))
    sigma = max(1.0, rng.uniform(*cfg.feather) * size)
    mask = _feather(binary, sigma)
    return Region(mask, kind, _support_box(mask), face_box, face_source)
