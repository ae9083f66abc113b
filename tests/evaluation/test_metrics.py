import math

import numpy as np
import pytest

from fakelocator.evaluation import metrics as M


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_and_eer_agree_with_scikit_learn(seed):
    from sklearn.metrics import roc_auc_score
    from sklearn.metrics import roc_curve as sk_roc_curve

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    scores = np.clip(labels * 0.3 + rng.normal(0.4, 0.25, 300), 0, 1).round(2)  # ties on purpose
    fpr, tpr, thr = M.roc_curve(scores, labels)
    sk_fpr, sk_tpr, sk_thr = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thr[1:], sk_thr[1:])
    assert M.auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    sk_fnr = 1 - sk_tpr
    assert M.eer(scores, labels) == pytest.approx(sk_fnr[np.argmin(np.abs(sk_fnr - sk_fpr))])


def test_classification_metrics_on_a_hand_made_case():
    scores = [0.9, 0.2, 0.6, 0.4, 0.7]
    labels = [1, 0, 0, 1, 1]
    m = M.classification_metrics(scores, labels)
    assert (m.acc, m.real_acc, m.fake_acc) == pytest.approx((3 / 5, 1 / 2, 2 / 3))
    assert (m.n_real, m.n_fake) == (2, 3)
    assert M.classification_metrics([1.0, 0.0], [1, 0]).eer == 0.0


def test_one_class_gives_nan_auc_and_eer_but_accuracy():
    m = M.classification_metrics([0.9, 0.8], [1, 1])
    assert math.isnan(m.auc) and math.isnan(m.eer) and math.isnan(m.real_acc) and m.fake_acc == 1.0


@pytest.mark.parametrize("shape", [(11, 11), (64, 48), (224, 224), (301, 173)])
def test_ssim_and_psnr_agree_with_scikit_image(rng, shape):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    gt = rng.uniform(0, 1, shape)
    pred = np.clip(gt + rng.normal(0, 0.1, shape), 0, 1)
    ref = structural_similarity(gt, pred, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert M.ssim(pred, gt) == pytest.approx(ref, abs=1e-6)
    assert M.psnr(pred, gt) == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=1.0), abs=1e-9)


def test_psnr_is_capped_at_100_db_for_identical_maps():
    m = np.full((16, 16), 0.3)
    assert M.psnr(m, m) == pytest.approx(100.0)


def test_coss_handles_zero_maps_as_documented(rng):
    z, x = np.zeros((8, 8)), rng.uniform(0, 1, (8, 8))
    assert M.coss(z, z) == 1.0 and M.coss(x, z) == 0.0 and M.coss(z, x) == 0.0
    assert M.coss(x, 3 * x) == pytest.approx(1.0)


def _mask(rows, cols, shape=(4, 4)):
    m = np.zeros(shape, bool)
    m[rows, cols] = True
    return m


def test_iou_dice_pbca_on_hand_made_masks():
    pred = _mask(slice(0, 2), slice(0, 2))  # 4 pixels, top-left
    gt = _mask(slice(0, 2), slice(1, 3))  # 4 pixels, shifted right by one
    # intersection 2, union 6
    assert M.iou(pred, gt) == pytest.approx(2 / 6)
    assert M.dice(pred, gt) == pytest.approx(4 / 8)
    assert M.pbca(pred, gt) == pytest.approx(12 / 16)
    empty = np.zeros((4, 4), bool)
    assert M.iou(empty, empty) == 1.0 and M.dice(empty, empty) == 1.0 and M.pbca(empty, empty) == 1.0


def test_iinc_on_hand_made_masks():
    empty = np.zeros((4, 4), bool)
    full = np.ones((4, 4), bool)
    pred = _mask(slice(0, 2), slice(0, 2))
    gt = _mask(slice(0, 2), slice(1, 3))
    assert M.iinc(empty, empty) == 0.0
    assert M.iinc(full, full) == 0.0  # perfect: 2 - 1 - 1
    assert M.iinc(full, empty) == pytest.approx(1 / (3 - 1))  # exactly one empty, union is everything
    assert M.iinc(empty, pred) == pytest.approx(1 / (3 - 4 / 16))
    # |I| = 2, |P| = |G| = 4, Ū = 6/16
    assert M.iinc(pred, gt) == pytest.approx((2 - 2 / 4 - 2 / 4) / (3 - 6 / 16))
    # a prediction inside the ground truth is penalized only for what it misses
    inside = _mask(slice(0, 1), slice(1, 3))
    assert M.iinc(inside, gt) == pytest.approx((2 - 1 - 2 / 4) / (3 - 4 / 16))


def test_localization_metrics_binarize_at_the_threshold():
    gt = np.zeros((16, 16))
    gt[4:12, 4:12] = 0.5
    pred = gt * 0.19  # 0.095: all below 0.1, so the binary prediction is empty
    m = M.localization_metrics(pred, gt)
    assert m["iou"] == 0.0 and m["coss"] == pytest.approx(1.0)
    m = M.localization_metrics(pred, gt, threshold=0.05)
    assert m["iou"] == 1.0 and m["iinc"] == 0.0
    assert set(m) == set(M.LOCALIZATION_KEYS)


def test_mismatched_shapes_are_refused():
    with pytest.raises(Exception, match="differ in shape"):
        M.coss(np.zeros((2, 3)), np.zeros((3, 2)))
