"""Pixel-level AUC and F1, and the constant and centred-prior baseline maps, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fakelocator.evaluation import baselines as B
from fakelocator.evaluation import metrics as M


def test_hand_computed_four_pixel_map():
    # Ground truth (binarized at 0.1): positives where gt ≥ 0.1.
    gt = np.array([[0.5, 0.05], [0.3, 0.0]])
    pred = np.array([[0.9, 0.8], [0.3, 0.1]])
    m = M.pixel_metrics(pred, gt)
    # positives score 0.9, 0.3; negatives 0.8, 0.1: 3 of the 4 pairs are ordered right.
    assert m["pixel_auc"] == pytest.approx(0.75)
    # thresholds 0.9 / 0.8 / 0.3 / 0.1 give F1 2/3, 1/2, 4/5, 2/3.
    assert m["f1_best"] == pytest.approx(0.8)
    # at 0.5: {0.9, 0.8} flagged, TP 1, FP 1, FN 1.
    assert m["f1_05"] == pytest.approx(0.5)


def test_a_perfect_map_scores_one_and_an_inverted_one_zero(rng):
    gt = np.zeros((32, 40))
    gt[5:20, 8:30] = rng.uniform(0.2, 1.0, (15, 22))
    perfect = (gt >= 0.1).astype(np.float64)
    m = M.pixel_metrics(perfect, gt)
    assert m == {"pixel_auc": 1.0, "f1_best": 1.0, "f1_05": 1.0}
    inverted = M.pixel_metrics(1.0 - perfect, gt)
    assert inverted["pixel_auc"] == 0.0 and inverted["f1_05"] == 0.0


def test_a_constant_map_has_pixel_auc_one_half_and_flags_everything_at_best(rng):
    gt = np.zeros((30, 30))
    gt[:10, :9] = 0.7  # 90 of 900 pixels
    for c in (0.0, 0.3, 0.8):
        m = M.pixel_metrics(np.full(gt.shape, c), gt)
        assert m["pixel_auc"] == 0.5
        assert m["f1_best"] == pytest.approx(2 * 90 / (900 + 90))
        assert m["f1_05"] == pytest.approx(2 * 90 / (900 + 90) if c >= 0.5 else 0.0)


def test_histogram_auc_equals_the_roc_auc_of_the_quantized_scores(rng):
    gt = rng.uniform(0, 0.2, (50, 60))
    pred = np.round(rng.uniform(0, 1, (50, 60)) * 20) / 20  # many ties
    pred = np.round(np.clip(pred + 0.3 * (gt >= 0.1), 0, 1) * 65535) / 65535  # exactly on 16-bit levels
    labels = (gt >= 0.1).ravel().astype(int)
    levels = M.pixel_levels(pred).ravel()
    assert M.pixel_metrics(pred, gt)["pixel_auc"] == pytest.approx(M.auc(levels, labels), abs=1e-12)
    # On values already on 16-bit levels the quantization changes nothing: equal to the float AUC.
    assert M.pixel_metrics(pred, gt)["pixel_auc"] == pytest.approx(M.auc(pred.ravel(), labels), abs=1e-12)


def test_best_f1_is_the_best_over_every_threshold(rng):
    gt = np.zeros((24, 24))
    gt[4:14, 6:16] = 0.5
    pred = np.clip(0.4 * (gt > 0) + rng.uniform(0, 0.7, gt.shape), 0, 1)
    gb = gt >= 0.1
    brute = max(2 * np.sum((pred >= t) & gb) / (np.sum(pred >= t) + gb.sum()) for t in np.unique(pred))
    assert M.pixel_metrics(pred, gt)["f1_best"] == pytest.approx(brute, abs=1e-4)  # thresholds on 16-bit levels


@pytest.mark.parametrize("gt", [np.zeros((8, 8)), np.ones((8, 8)), np.full((8, 8), 0.05)])
def test_undefined_without_both_classes(gt):
    m = M.pixel_metrics(np.random.default_rng(0).random((8, 8)), gt)
    assert all(math.isnan(v) for v in m.values())


def test_pixel_levels_round_and_clip():
    assert M.pixel_levels(np.array([-1.0, 0.0, 0.5, 1.0, 2.0, np.nan])).tolist() == [0, 0, 32768, 65535, 65535, 0]


# ------------------------------------------------------------------------------------ baselines


def test_constant_map_metrics_from_the_stats_equal_the_direct_ones(rng):
    gt = np.zeros((40, 50), np.float32)
    gt[10:25, 5:30] = rng.uniform(0, 0.9, (15, 25))
    stats = B.prior_stats(gt, 0.1)
    for c in (0.05, 0.3, 0.6):
        direct = np.full(gt.shape, c)
        got = B.constant_metrics(stats, c)
        assert got["coss"] == pytest.approx(M.coss(direct, gt), rel=1e-9)
        assert got["psnr"] == pytest.approx(M.psnr(direct, gt), rel=1e-9)
        px = M.pixel_metrics(direct, gt)
        for k in ("pixel_auc", "f1_best", "f1_05"):
            assert got[k] == pytest.approx(px[k], rel=1e-9), k
    # COSS of a constant does not depend on its value: ΣG / (√N ‖G‖).
    g = gt.astype(np.float64).ravel()
    assert stats["const_coss"] == pytest.approx(g.sum() / (math.sqrt(g.size) * np.linalg.norm(g)))


def test_centred_blob_shape():
    blob = B.centred_blob(100, 200, 0.1)
    # Pixel centres: the four central pixels are half a pixel from the centre, σ = 0.1 × each side.
    assert blob.shape == (100, 200) and blob.max() == pytest.approx(math.exp(-0.5 * ((0.5 / 10) ** 2 + (0.5 / 20) ** 2)))
    # About one σ (20 px) right of the centre, the value has dropped by exp(−1/2).
    assert blob[50, 120] / blob[50, 100] == pytest.approx(math.exp(-0.5 * (20.5 / 20) ** 2) / math.exp(-0.5 * (0.5 / 20) ** 2))
    assert np.allclose(blob, blob[::-1, ::-1])  # centred


def test_blob_stats_equal_the_metrics_on_the_materialized_blob(rng):
    gt = np.zeros((60, 90), np.float32)
    gt[20:45, 30:70] = rng.uniform(0.05, 1.0, (25, 40))
    stats = B.prior_stats(gt, 0.1)
    for s in B.BLOB_SCALES:
        blob = B.centred_blob(60, 90, s)
        row = stats["blob"][B.scale_key(s)]
        assert row["coss"] == pytest.approx(M.coss(blob, gt), rel=1e-9)
        assert row["psnr"] == pytest.approx(M.psnr(blob, gt), rel=1e-9)
        px = M.pixel_metrics(blob, gt)
        for k in ("pixel_auc", "f1_best", "f1_05"):
            assert row[k] == pytest.approx(px[k], rel=1e-12), (s, k)


def test_a_blob_on_its_own_ellipse_has_pixel_auc_one_and_coss_one_on_itself():
    h, w, s = 80, 120, 0.17
    blob = B.centred_blob(h, w, s)
    stats = B.prior_stats(blob, 0.5)  # ground truth = the blob: its ≥ 0.5 part is the half-maximum ellipse
    row = stats["blob"][B.scale_key(s)]
    assert row["coss"] == pytest.approx(1.0) and row["psnr"] > 90
    assert row["pixel_auc"] == 1.0  # the blob falls with the elliptical radius: it ranks the ellipse first
    assert row["f1_05"] == 1.0


def test_the_chosen_scale_matches_the_typical_region():
    # Half-maximum area 2π ln2 s²: s = 0.11 covers 5.3 % of the image.
    area = 2 * math.pi * math.log(2) * 0.11 ** 2
    stats = [{"gt_positive": int(area * 10_000), "pixels": 10_000, "gt_sum": 1.0}] * 3
    assert B.typical_scale(stats, ["partial"] * 3)[0] == 0.11
    big = [{"gt_positive": 6_000, "pixels": 10_000, "gt_sum": 1.0}]
    assert B.typical_scale(big, ["partial"])[0] == 0.38
    # Entire syntheses (all positive) do not set the size when there are partial edits.
    mixed = stats + [{"gt_positive": 10_000, "pixels": 10_000, "gt_sum": 1.0}] * 5
    assert B.typical_scale(mixed, ["partial"] * 3 + ["entire"] * 5)[0] == 0.11


def test_choose_takes_the_mean_ground_truth_per_image():
    a, b = np.zeros((10, 10)), np.zeros((20, 20))
    a[:5] = 0.4  # mean 0.2
    b[:2] = 1.0  # mean 0.1
    choice = B.choose([B.prior_stats(a, 0.1), B.prior_stats(b, 0.1)], ["partial", "partial"])
    assert choice["value"] == pytest.approx(0.15)  # images weigh the same, whatever their size


def test_ratio():
    assert B.ratio(0.8, 0.4) == pytest.approx(2.0)
    assert math.isnan(B.ratio(0.8, 0.0)) and math.isnan(B.ratio(math.nan, 0.4)) and math.isnan(B.ratio(None, 0.4))
