"""The paper's metrics (Sec. V-A), defined exactly; see docs/metrics.md.

Classification metrics take per-image fake scores in [0, 1] and labels (1 fake, 0 real).
Localization metrics compare one predicted map with one ground-truth map, both float arrays of the
same shape with values in [0, 1]; ``localization_metrics`` returns all of them for one image, and
the caller averages over manipulated images (every image weighs the same, whatever its size).

Torch-free: numpy (and OpenCV for the SSIM window).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.metadata import DEFAULT_THRESHOLD

#: PSNR when the maps are identical (MSE = 0): the MSE is floored at 1e-10, so PSNR ≤ 100 dB.
PSNR_MSE_FLOOR = 1e-10
#: The paper binarizes maps at 0.1 (following Dang et al.) for IoU, Dice, PBCA and IINC.
DEFAULT_BINARIZE_THRESHOLD = 0.1
SSIM_SIGMA, SSIM_K1, SSIM_K2 = 1.5, 0.01, 0.03


# ---------------------------------------------------------------------------------------- classification


def _check_scores(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise FakeLocatorError(f"scores and labels differ in length: {s.size} vs {y.size}")
    if not np.isin(y, (0, 1)).all():
        raise FakeLocatorError("labels must be 0 (real) or 1 (fake)")
    return s, y.astype(np.int64)


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct score, highest threshold first, starting at (0, 0).

    The same points as ``sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)``.
    """
    s, y = _check_scores(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each run of equal scores
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    pos, neg = tps[-1] if tps.size else 0, fps[-1] if fps.size else 0
    tpr = np.r_[0.0, tps / pos] if pos else np.full(distinct.size + 1, np.nan)
    fpr = np.r_[0.0, fps / neg] if neg else np.full(distinct.size + 1, np.nan)
    thresholds = np.r_[np.inf, s[distinct]]
    return fpr, tpr, thresholds


def auc(scores, labels) -> float:
    """Area under the ROC curve (trapezoids over every distinct score); NaN with only one class."""
    fpr, tpr, _ = roc_curve(scores, labels)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return math.nan
    return float(np.trapezoid(tpr, fpr))


def eer(scores, labels) -> float:
    """Equal error rate: the false-negative rate at the ROC point where |FNR − FPR| is smallest.

    This is the definition of Dang et al.'s evaluation code, which the paper's baselines follow;
    no interpolation between ROC points. NaN with only one class.
    """
    fpr, tpr, _ = roc_curve(scores, labels)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return math.nan
    fnr = 1 - tpr
    return float(fnr[np.argmin(np.abs(fnr - fpr))])


@dataclass(frozen=True)
class ClassificationMetrics:
    acc: float
    real_acc: float
    fake_acc: float
    auc: float
    eer: float
    n_real: int
    n_fake: int


def classification_metrics(scores, labels, threshold: float = DEFAULT_THRESHOLD) -> ClassificationMetrics:
    """ACC, real ACC, fake ACC (a score ≥ ``threshold`` means fake), AUC and EER."""
    s, y = _check_scores(scores, labels)
    pred = (s >= threshold).astype(np.int64)
    correct = pred == y
    real, fake = y == 0, y == 1
    return ClassificationMetrics(
        acc=float(correct.mean()) if y.size else math.nan,
        real_acc=float(correct[real].mean()) if real.any() else math.nan,
        fake_acc=float(correct[fake].mean()) if fake.any() else math.nan,
        auc=auc(s, y),
        eer=eer(s, y),
        n_real=int(real.sum()),
        n_fake=int(fake.sum()),
    )


# ------------------------------------------------------------------------------------------ localization


def _check_maps(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape:
        raise FakeLocatorError(f"prediction and ground truth differ in shape: {p.shape} vs {g.shape}")
    if p.ndim != 2:
        raise FakeLocatorError(f"maps must be 2-D, got shape {p.shape}")
    return p, g


def coss(pred, gt) -> float:
    """Cosine similarity of the flattened maps. Two all-zero maps → 1; exactly one all-zero → 0."""
    p, g = _check_maps(pred, gt)
    np_, ng = np.linalg.norm(p), np.linalg.norm(g)
    if np_ == 0 and ng == 0:
        return 1.0
    if np_ == 0 or ng == 0:
        return 0.0
    return float(np.dot(p.ravel(), g.ravel()) / (np_ * ng))


def psnr(pred, gt) -> float:
    """10·log10(1 / MSE) for maps in [0, 1]; MSE floored at ``PSNR_MSE_FLOOR`` (≤ 100 dB)."""
    p, g = _check_maps(pred, gt)
    mse = float(np.mean((p - g) ** 2))
    return 10.0 * math.log10(1.0 / max(mse, PSNR_MSE_FLOOR))


def ssim(pred, gt) -> float:
    """Mean SSIM (Wang et al. 2004) with data range 1, an 11×11 Gaussian window of σ = 1.5, K1 = 0.01,
    K2 = 0.03, population (not sample) covariances, averaged over the pixels at least 5 from the border.

    Equals ``skimage.metrics.structural_similarity(gt, pred, data_range=1, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)``. Maps smaller than 11×11 raise.
    """
    import cv2

    p, g = _check_maps(pred, gt)
    win = 11  # skimage: 2 * int(truncate * sigma + 0.5) + 1 with truncate 3.5
    if min(p.shape) < win:
        raise FakeLocatorError(f"SSIM needs maps of at least {win}×{win}, got {p.shape}")
    blur = lambda a: cv2.GaussianBlur(a, (win, win), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    c1, c2 = (SSIM_K1 * 1.0) ** 2, (SSIM_K2 * 1.0) ** 2
    mu_p, mu_g = blur(p), blur(g)
    var_p = blur(p * p) - mu_p**2
    var_g = blur(g * g) - mu_g**2
    cov = blur(p * g) - mu_p * mu_g
    s = ((2 * mu_p * mu_g + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_g**2 + c1) * (var_p + var_g + c2))
    pad = (win - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean())


def binarize(m: np.ndarray, threshold: float = DEFAULT_BINARIZE_THRESHOLD) -> np.ndarray:
    """Pixels below ``threshold`` → False, the others → True (the paper: "less than 0.1 become 0")."""
    return np.asarray(m) >= threshold


def iou(pred_bin: np.ndarray, gt_bin: np.ndarray) -> float:
    """|P ∧ G| / |P ∨ G| of binary masks; two empty masks → 1."""
    inter = np.logical_and(pred_bin, gt_bin).sum()
    union = np.logical_or(pred_bin, gt_bin).sum()
    return 1.0 if union == 0 else float(inter / union)


def dice(pred_bin: np.ndarray, gt_bin: np.ndarray) -> float:
    """2|P ∧ G| / (|P| + |G|) of binary masks; two empty masks → 1."""
    inter = np.logical_and(pred_bin, gt_bin).sum()
    total = pred_bin.sum() + gt_bin.sum()
    return 1.0 if total == 0 else float(2 * inter / total)


def pbca(pred_bin: np.ndarray, gt_bin: np.ndarray) -> float:
    """Pixel-wise binary classification accuracy: the fraction of pixels where the masks agree."""
    return float(np.mean(pred_bin == gt_bin))


def iinc(pred_bin: np.ndarray, gt_bin: np.ndarray) -> float:
    """Inverse Intersection Non-Containment (Dang et al., CVPR 2020), lower is better, in [0, 1]:

    ``IINC = 1 / (3 − Ū) · { 0 if both masks are empty; 1 if exactly one is; 2 − |I|/|P| − |I|/|G| else }``

    where I and U are the masks' intersection and union, Ū the fraction of pixels in the union and |·|
    a pixel count. Unlike IoU it penalizes a prediction that is not contained in the ground truth and
    one that does not contain it separately.
    """
    p, g = np.asarray(pred_bin, bool), np.asarray(gt_bin, bool)
    n_p, n_g = int(p.sum()), int(g.sum())
    u_mean = float(np.logical_or(p, g).mean())
    if n_p == 0 and n_g == 0:
        core = 0.0
    elif n_p == 0 or n_g == 0:
        core = 1.0
    else:
        inter = int(np.logical_and(p, g).sum())
        core = 2.0 - inter / n_p - inter / n_g
    return core / (3.0 - u_mean)


LOCALIZATION_KEYS = ("coss", "psnr", "ssim", "iou", "dice", "pbca", "iinc")


def localization_metrics(pred, gt, threshold: float = DEFAULT_BINARIZE_THRESHOLD) -> dict[str, float]:
    """All localization metrics for one image: COSS, PSNR, SSIM on the gray maps; IoU, Dice, PBCA,
    IINC on the maps binarized at ``threshold``."""
    p, g = _check_maps(pred, gt)
    pb, gb = binarize(p, threshold), binarize(g, threshold)
    return {
        "coss": coss(p, g),
        "psnr": psnr(p, g),
        "ssim": ssim(p, g),
        "iou": iou(pb, gb),
        "dice": dice(pb, gb),
        "pbca": pbca(pb, gb),
        "iinc": iinc(pb, gb),
    }


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-key mean over images (NaNs ignored); empty input gives NaN for every localization key."""
    keys = list(rows[0]) if rows else list(LOCALIZATION_KEYS)
    out = {}
    for k in keys:
        vals = np.array([r[k] for r in rows], dtype=np.float64)
        out[k] = float(np.nanmean(vals)) if vals.size and not np.isnan(vals).all() else math.nan
    return out


# ------------------------------------------------------------------------------------- pixel-level

#: Pixel AUC and best-threshold F1 rank the predicted map's pixels after quantizing it to 16 bits
#: (``floor(clip(p, 0, 1) * 65535 + 0.5)``): both then come exactly, in O(pixels), from two
#: histograms instead of a sort of every pixel (2 M of them at 1080p). Pixels whose values differ
#: by less than 1/65535 count as tied.
PIXEL_LEVELS = 65536
#: The fixed threshold of ``f1_05``: a pixel is predicted manipulated when its map value is ≥ 0.5.
FIXED_F1_THRESHOLD = 0.5
PIXEL_KEYS = ("pixel_auc", "f1_best", "f1_05")


def pixel_levels(pred) -> np.ndarray:
    """A map in [0, 1] → uint16 levels ``floor(clip(p, 0, 1) * 65535 + 0.5)`` (NaN → 0)."""
    q = np.clip(np.asarray(pred, dtype=np.float64), 0.0, 1.0)  # a new array: modified in place below
    np.nan_to_num(q, copy=False, nan=0.0)
    q *= PIXEL_LEVELS - 1
    q += 0.5
    return np.floor(q, out=q).astype(np.uint16)


def level_histograms(levels: np.ndarray, gt_bin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) int64 histograms of ``levels`` over the pixels where ``gt_bin`` is True /
    False, over the levels that occur, in increasing order (empty levels change neither the AUC nor
    the best F1, and dropping them keeps the work proportional to the distinct values)."""
    levels, gt_bin = np.asarray(levels), np.asarray(gt_bin, bool)
    if levels.shape != gt_bin.shape:
        raise FakeLocatorError(f"prediction and ground truth differ in shape: {levels.shape} vs {gt_bin.shape}")
    total = np.bincount(levels.ravel(), minlength=PIXEL_LEVELS)
    present = np.flatnonzero(total)
    pos = np.bincount(levels[gt_bin], minlength=PIXEL_LEVELS)[present].astype(np.int64)
    return pos, total[present].astype(np.int64) - pos


def histogram_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC of scores given as histograms over ordered levels, ties counted half (the
    Mann–Whitney statistic; equal to the trapezoidal ROC area, so to ``auc`` of the same scores).
    Exact in integers. NaN when either class is empty."""
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    below = np.cumsum(neg) - neg  # negatives strictly below each level
    twice = 2 * int(np.dot(pos, below)) + int(np.dot(pos, neg))
    return twice / (2.0 * n_pos * n_neg)


def histogram_best_f1(pos: np.ndarray, neg: np.ndarray) -> float:
    """The best F1 over every threshold t ("a pixel is positive when its level ≥ t"), from
    histograms; predicting nothing counts as F1 0. NaN when there is no positive pixel."""
    n_pos = int(pos.sum())
    if n_pos == 0:
        return math.nan
    tp = np.cumsum(pos[::-1])[::-1]  # positives at or above each level
    fp = np.cumsum(neg[::-1])[::-1]
    f1 = 2.0 * tp / (tp + fp + n_pos)  # 2TP / (2TP + FP + FN) with FN = P − TP
    return float(f1.max())


def f1_score(pred_bin: np.ndarray, gt_bin: np.ndarray) -> float:
    """2|P ∧ G| / (|P| + |G|) of binary masks (pixel F1, equal to Dice); NaN when G is empty (the
    pixel-level metrics are defined on images with manipulated pixels only)."""
    p, g = np.asarray(pred_bin, bool), np.asarray(gt_bin, bool)
    n_g = int(g.sum())
    if n_g == 0:
        return math.nan
    return float(2 * np.logical_and(p, g).sum() / (p.sum() + n_g))


def pixel_metrics(pred, gt, binarize_threshold: float = DEFAULT_BINARIZE_THRESHOLD) -> dict[str, float]:
    """Pixel-level AUC, best-threshold F1 and F1 at 0.5 of one map against its binarized ground truth.

    The ground truth is Eq. 7 binarized at ``binarize_threshold`` (≥ 0.1 by default, the IoU mask):
    there are no hand-drawn masks. All three need both classes in the binarized ground truth and
    are NaN otherwise (an entire synthesis is all positive; a partial edit whose differences all
    stay under the threshold has no positive pixel), so their means cover the images with both
    manipulated and untouched pixels. ``f1_best`` is
    the best F1 over thresholds of the image's own map, per image, then averaged over images (the
    IMDL-BenCo / TruFor "F1 best" protocol); ``f1_05`` thresholds the map at 0.5.
    """
    p, g = _check_maps(pred, gt)
    gb = binarize(g, binarize_threshold)
    both = bool(gb.any()) and not bool(gb.all())
    if not both:
        return dict.fromkeys(PIXEL_KEYS, math.nan)
    pos, neg = level_histograms(pixel_levels(p), gb)
    return {"pixel_auc": histogram_auc(pos, neg), "f1_best": histogram_best_f1(pos, neg),
            "f1_05": f1_score(p >= FIXED_F1_THRESHOLD, gb)}
