"""Maps that know nothing about the image: what every localization number is read against.

A map that says the same thing for every image scores well on some metrics (COSS rewards any
positive map that overlaps the ground truth's mass, PSNR rewards a map near the mean), so each
model figure is shown beside such maps evaluated on the same images:

- **constant**: ``c`` at every pixel, with ``c`` the mean ground-truth value of the evaluated
  manipulated images (each image's pixel mean, averaged over the images: the constant with the
  lowest mean squared error on average, so the best PSNR a constant gets; it is read off the
  evaluated set itself, which can only make this baseline stronger). Its COSS does not depend on
  ``c`` (⟨c·1, G⟩ / (‖c·1‖ ‖G‖) = ΣG / (√N ‖G‖)); its pixel AUC is 0.5 (every pixel ties); its
  best-threshold F1 flags every pixel, 2|G_b| / (N + |G_b|); its F1 at 0.5 is the same when
  c ≥ 0.5, else 0.
- **centred prior**: a centred Gaussian blob ``exp(−((x − cx)² / (2 (s·W)²) + (y − cy)² / (2 (s·H)²)))``
  (peak 1, pixel centres, σ a fraction ``s`` of each side, so it stretches with the image). ``s`` is
  fixed per dataset so that the blob's half-maximum ellipse (area 2π ln 2 · s² of the image) covers
  the typical manipulated region: the median fraction of pixels of the binarized ground truth over
  the partial edits; it is taken from ``BLOB_SCALES`` (the nearest, in ratio), for which every image
  is scored as it streams by. report.json lists every scale's figures, so the strongest centred
  prior can be read there too.
- **zero**: the all-zero map, reported for PSNR (and F1) only: on partial edits, whose ground
  truth is mostly near 0, a map that says nothing everywhere already has a high PSNR.

Per image, ``prior_stats`` keeps what is needed (four sums and the blob scores); ``summarize``
picks ``c`` and ``s`` and averages, over any subset of the images (a kind, a family, a size bucket).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from fakelocator.evaluation.metrics import (
    FIXED_F1_THRESHOLD,
    PIXEL_LEVELS,
    PSNR_MSE_FLOOR,
    binarize,
    histogram_auc,
    histogram_best_f1,
    pixel_levels,
)

#: σ of the centred blob as a fraction of each side; half-maximum areas 1.1 % … 63 % of the image.
BLOB_SCALES = (0.05, 0.075, 0.11, 0.17, 0.25, 0.38)
#: The metrics every baseline reports (the model's own keys, so rows line up).
BASELINE_KEYS = ("coss", "psnr", "pixel_auc", "f1_best", "f1_05")
_HALF_MAX_AREA = 2.0 * math.pi * math.log(2.0)  # half-maximum ellipse area / (s² · W · H)


def scale_key(s: float) -> str:
    return f"{s:g}"


@lru_cache(maxsize=2 * len(BLOB_SCALES))
def _blob(height: int, width: int, s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(gy (H,), gx (W,), rank (H·W,), histogram (R,), mask ≥ 0.5 (H·W,)) of one blob: each pixel's
    16-bit level replaced by its rank among the R levels that occur, and their pixel counts."""
    gy = np.exp(-0.5 * ((np.arange(height) + 0.5 - height / 2) / (s * height)) ** 2)
    gx = np.exp(-0.5 * ((np.arange(width) + 0.5 - width / 2) / (s * width)) ** 2)
    full = np.outer(gy, gx)
    levels = pixel_levels(full).ravel()
    counts = np.bincount(levels, minlength=PIXEL_LEVELS)
    present = np.flatnonzero(counts)
    to_rank = np.zeros(PIXEL_LEVELS, np.uint16)
    to_rank[present] = np.arange(present.size)
    rank = to_rank[levels]
    hist = counts[present].astype(np.int64)
    mask = (full >= FIXED_F1_THRESHOLD).ravel()
    for a in (gy, gx, rank, hist, mask):
        a.flags.writeable = False
    return gy, gx, rank, hist, mask


def centred_blob(height: int, width: int, s: float) -> np.ndarray:
    """The centred prior map (height, width), float64, peak 1 (module docstring)."""
    gy, gx, *_ = _blob(height, width, float(s))
    return np.outer(gy, gx)


def prior_stats(gt: np.ndarray, binarize_threshold: float) -> dict:
    """What the baselines need from one ground truth (H, W): pixel count, ΣG, ΣG², |G_b|, and the
    constant's COSS; and per blob scale its COSS, PSNR, pixel AUC, F1 best and F1 at 0.5.

    The blob's COSS and PSNR use its separability (⟨blob, G⟩ = gyᵀ G gx, ‖blob‖ = ‖gy‖ ‖gx‖) and
    its pixel metrics the cached histogram of its levels, so the six scales cost about one pass.
    """
    g = np.asarray(gt, dtype=np.float64)
    h, w = g.shape
    n = g.size
    total, total_sq = float(g.sum()), float(np.dot(g.ravel(), g.ravel()))
    gb = binarize(g, binarize_threshold).ravel()
    positives = np.flatnonzero(gb)
    n_pos = int(positives.size)
    both = 0 < n_pos < n
    norm_g = math.sqrt(total_sq)
    out = {"pixels": n, "gt_sum": total, "gt_sq_sum": total_sq, "gt_positive": n_pos,
           "const_coss": total / (math.sqrt(n) * norm_g) if norm_g > 0 else 0.0, "blob": {}}
    for s in BLOB_SCALES:
        gy, gx, rank, hist, mask = _blob(h, w, s)
        dot = float(gy @ g @ gx)
        norm_b_sq = float(np.dot(gy, gy) * np.dot(gx, gx))
        coss = dot / (math.sqrt(norm_b_sq) * norm_g) if norm_g > 0 else 0.0
        mse = max((total_sq - 2.0 * dot + norm_b_sq) / n, PSNR_MSE_FLOOR)
        row = {"coss": coss, "psnr": 10.0 * math.log10(1.0 / mse),
               "pixel_auc": math.nan, "f1_best": math.nan, "f1_05": math.nan}
        if both:
            pos = np.bincount(rank[positives], minlength=hist.size).astype(np.int64)
            row["pixel_auc"] = histogram_auc(pos, hist - pos)
            row["f1_best"] = histogram_best_f1(pos, hist - pos)
            row["f1_05"] = float(2 * int(mask[positives].sum()) / (int(mask.sum()) + n_pos))
        out["blob"][scale_key(s)] = row
    return out


def constant_metrics(stats: dict, c: float) -> dict[str, float]:
    """The constant map ``c``'s metrics on one image, from its ``prior_stats``."""
    n, n_pos = stats["pixels"], stats["gt_positive"]
    mse = max(c * c - 2.0 * c * stats["gt_sum"] / n + stats["gt_sq_sum"] / n, PSNR_MSE_FLOOR)
    out = {"coss": stats["const_coss"] if c > 0 else 0.0, "psnr": 10.0 * math.log10(1.0 / mse),
           "pixel_auc": math.nan, "f1_best": math.nan, "f1_05": math.nan}
    if 0 < n_pos < n:
        everything = 2.0 * n_pos / (n + n_pos)
        out.update(pixel_auc=0.5, f1_best=everything, f1_05=everything if c >= FIXED_F1_THRESHOLD else 0.0)
    return out


def typical_scale(stats: list[dict], kinds: list[str]) -> tuple[float, float]:
    """(s, area): the blob scale whose half-maximum ellipse best matches the median binarized
    ground-truth area of the partial edits (of all the images when there are none)."""
    fractions = [st["gt_positive"] / st["pixels"] for st, k in zip(stats, kinds) if k == "partial"]
    if not fractions:
        fractions = [st["gt_positive"] / st["pixels"] for st in stats]
    area = float(np.median(fractions)) if fractions else 0.0
    if area <= 0:
        return BLOB_SCALES[0], area
    want = math.sqrt(area / _HALF_MAX_AREA)
    best = min(BLOB_SCALES, key=lambda s: abs(math.log(s / want)))
    return best, area


def _nanmean(values) -> float:
    a = np.asarray(list(values), dtype=np.float64)
    return float(np.nanmean(a)) if a.size and not np.isnan(a).all() else math.nan


def choose(stats: list[dict], kinds: list[str]) -> dict:
    """The dataset-level choices: ``value`` (c), ``scale`` (s) and the ``area`` it was matched to."""
    c = _nanmean(st["gt_sum"] / st["pixels"] for st in stats) if stats else math.nan
    s, area = typical_scale(stats, kinds)
    return {"value": c, "scale": s, "area": area}


def means(stats: list[dict], choice: dict) -> dict:
    """Mean baseline metrics over ``stats`` (one image each): ``constant``, ``zero`` (the all-zero
    map: what PSNR gives for saying "nothing here"), ``centred`` (the chosen scale) and
    ``centred_scales`` (every scale)."""
    c, s = choice["value"], choice["scale"]
    const = [constant_metrics(st, c) for st in stats] if math.isfinite(c) else []
    zero = [constant_metrics(st, 0.0) for st in stats]
    out = {
        "constant": {k: _nanmean(r[k] for r in const) for k in BASELINE_KEYS},
        "zero": {k: _nanmean(r[k] for r in zero) for k in BASELINE_KEYS},
        "centred": {k: _nanmean(st["blob"][scale_key(s)][k] for st in stats) for k in BASELINE_KEYS},
        "centred_scales": {scale_key(t): {k: _nanmean(st["blob"][scale_key(t)][k] for st in stats) for k in BASELINE_KEYS}
                           for t in BLOB_SCALES},
        "n": len(stats),
    }
    return out


def ratio(model: float, baseline: float) -> float:
    """model / baseline; NaN when either is undefined or the baseline is 0."""
    if model is None or baseline is None or not (math.isfinite(model) and math.isfinite(baseline)) or baseline == 0:
        return math.nan
    return model / baseline
