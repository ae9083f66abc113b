"""Many distinct real images from a few photos: random crops, output sizes, aspect ratios, flips.

The crop is never smaller than ``min_source_side`` (the model's input side by default), so the model,
which sees every image stretched to its input size, always sees the photo *downscaled*. An output
larger than its crop is enlarged (at most ``max_upscale``×, bicubic); that interpolation texture lives
at the output's pixel scale and is averaged away before the model sees it. The photometric jitter is
pointwise (gamma, channel gains, saturation) and adds no spatial texture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fakelocator.training.synth.config import SynthConfig
from fakelocator.training.synth.sampling import log_uniform

Box = tuple[float, float, float, float]  # (x, y, w, h) in pixels


@dataclass(frozen=True)
class View:
    image: np.ndarray  # uint8 (H, W, 3) RGB, the real image
    crop: tuple[int, int, int, int]  # (x, y, w, h) in the photo
    flip: bool  # mirrored left-right after cropping
    jitter: str  # the photometric change, "" for none
    faces: tuple[Box, ...]  # face boxes that lie inside the view, in its pixels


def _choose_geometry(ph: int, pw: int, faces, rng: np.random.Generator, cfg: SynthConfig, prefer_face: float):
    """(crop x, y, w, h, out_h, out_w) or None when this draw does not fit the photo."""
    smin, smax = cfg.size_range
    side = cfg.min_source_side
    r = log_uniform(rng, *cfg.aspect_range)  # width / height
    ch_max = min(ph, pw / r)
    ch_min = max(side, side / r)
    if ch_min > ch_max:
        return None
    long_lo = smin * max(r, 1.0 / r)
    long_hi = min(smax, cfg.max_upscale * ch_max * max(1.0, r))
    if long_lo > long_hi:
        return None
    out_long = log_uniform(rng, long_lo, long_hi)
    out_h = out_long if r <= 1 else out_long / r
    ch_min = max(ch_min, out_h / cfg.max_upscale)
    face = None
    if prefer_face and faces:
        fx, fy, fw, fh = faces[int(rng.integers(len(faces)))]
        need = 1.3 * max(fh, fw / r)  # the face and a margin fit in the crop
        lo, hi = max(ch_min, need), min(ch_max, max(ch_min, need, prefer_face * max(fh, fw / r)))
        if lo <= hi:
            ch_min, ch_max, face = lo, hi, (fx, fy, fw, fh)
    if ch_min > ch_max:
        return None
    ch = log_uniform(rng, ch_min, ch_max)
    cw = min(pw, ch * r)
    ch, cw = min(ph, max(int(round(ch)), 1)), max(int(round(cw)), 1)
    if face is None:
        x0 = int(rng.integers(0, pw - cw + 1))
        y0 = int(rng.integers(0, ph - ch + 1))
    else:
        fx, fy, fw, fh = face
        x_lo, x_hi = max(0, math.ceil(fx + fw - cw)), min(pw - cw, math.floor(fx))
        y_lo, y_hi = max(0, math.ceil(fy + fh - ch)), min(ph - ch, math.floor(fy))
        x0 = int(rng.integers(x_lo, x_hi + 1)) if x_lo <= x_hi else int(rng.integers(0, pw - cw + 1))
        y0 = int(rng.integers(y_lo, y_hi + 1)) if y_lo <= y_hi else int(rng.integers(0, ph - ch + 1))
    out_h = int(round(min(max(out_h, smin), smax)))
    out_w = int(round(min(max(out_h * r, smin), smax)))
    return x0, y0, cw, ch, out_h, out_w


def _jitter(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    gamma = log_uniform(rng, 0.8, 1.25)
    gains = rng.uniform(0.92, 1.08, size=3)
    saturation = rng.uniform(0.75, 1.25)
    x = (image.astype(np.float32) / 255.0) ** np.float32(gamma) * gains.astype(np.float32)
    luma = x @ np.asarray((0.299, 0.587, 0.114), np.float32)
    x = luma[..., None] + (x - luma[..., None]) * np.float32(saturation)
    out = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    desc = f"gamma={gamma:.3f};gains={gains[0]:.3f},{gains[1]:.3f},{gains[2]:.3f};saturation={saturation:.3f}"
    return out, desc


def make_view(photo: np.ndarray, faces: tuple[Box, ...], rng: np.random.Generator, cfg: SynthConfig,
              *, prefer_face: float = 0.0) -> View:
    """A real image cut from ``photo`` (uint8 (H, W, 3) RGB) with the size rules of ``cfg``.

    ``faces`` are boxes in the photo. With ``prefer_face`` > 0 the crop is drawn to contain one of
    them and to be at most ``prefer_face`` times its size (where the other rules allow), so that
    small face parts (eyes, mouth) are large enough to be laid out on the real face.
    """
    import cv2

    ph, pw = photo.shape[:2]
    geometry = None
    for _ in range(32):
        geometry = _choose_geometry(ph, pw, faces, rng, cfg, prefer_face)
        if geometry is not None:
            break
    if geometry is None:  # the photo cannot meet the aspect range: take it whole, at its own aspect
        side = cfg.min_source_side
        scale = min(cfg.size_range[1] / max(ph, pw), cfg.max_upscale, max(cfg.size_range[0] / min(ph, pw), 1.0))
        geometry = (0, 0, pw, ph, int(round(ph * scale)), int(round(pw * scale)))
        if min(ph, pw) < side:
            raise ValueError(f"photo of {pw}x{ph} px is smaller than min_source_side={side}")
    x0, y0, cw, ch, out_h, out_w = geometry
    crop = photo[y0:y0 + ch, x0:x0 + cw]
    if (out_h, out_w) == (ch, cw):
        image = crop.copy()
    else:
        shrink = out_h * out_w < ch * cw
        image = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    flip = bool(rng.random() < 0.5)
    if flip:
        image = np.ascontiguousarray(image[:, ::-1])
    jitter = ""
    if rng.random() < cfg.jitter_probability:
        image, jitter = _jitter(image, rng)
    sx, sy = out_w / cw, out_h / ch
    inside = []
    for fx, fy, fw, fh in faces:
        bx, by, bw, bh = (fx - x0) * sx, (fy - y0) * sy, fw * sx, fh * sy
        if flip:
            bx = out_w - (bx + bw)
        if bx >= -0.05 * bw and by >= -0.05 * bh and bx + bw <= out_w + 0.05 * bw and by + bh <= out_h + 0.05 * bh:
            inside.append((bx, by, bw, bh))
    return View(image, (x0, y0, cw, ch), flip, jitter, tuple(inside))
