"""Robustness: variants, their ground truth (as the paper makes it), the disorganization test, γ, outputs."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from fakelocator.degradations import gaussian_blur, jpeg
from fakelocator.errors import FakeLocatorError
from fakelocator.evaluation import robustness as R
from fakelocator.evaluation.runner import EvalSettings, evaluate
from fakelocator.training.groundtruth import partial_manipulation_map
from fakelocator.training.samples import load_samples


@pytest.fixture(scope="module")
def pair(by_hand):
    rng = np.random.default_rng(3)
    real = by_hand.smooth_image(rng, 40, 52, (0, 60))
    fake = real.copy()
    fake[5:20, 10:30] = (255, 0, 0)
    return real, fake


# ---- ground truth of degraded images --------------------------------------------------------------


def test_a_degraded_fakes_ground_truth_is_eq7_of_the_clean_real_and_the_degraded_fake(pair):
    real, fake = pair
    image, gt = R.apply_variant(R.Variant("jpeg", 50), fake, lambda x: partial_manipulation_map(real, x), np.random.default_rng(0))
    np.testing.assert_array_equal(image, jpeg(fake, 50))
    np.testing.assert_array_equal(gt, partial_manipulation_map(real, jpeg(fake, 50)))
    assert not np.array_equal(gt, partial_manipulation_map(real, fake))  # the degradation shows in the GT


def test_entire_stays_ones_and_real_needs_none(pair):
    _, fake = pair
    ones = lambda x: np.ones(x.shape[:2], np.float32)  # noqa: E731
    image, gt = R.apply_variant(R.Variant("blur", 5), fake, ones, np.random.default_rng(0))
    np.testing.assert_array_equal(image, gaussian_blur(fake, 5))
    assert (gt == 1).all()
    image, gt = R.apply_variant(R.Variant("lowres", 2.0), fake, lambda x: None, np.random.default_rng(0))
    assert gt is None and image.shape == fake.shape


def test_degrade_image_false_leaves_the_image_alone(pair):
    real, _ = pair
    image, _ = R.apply_variant(R.Variant("noise", 0.01), real, lambda x: None, np.random.default_rng(0), degrade_image=False)
    assert image is real


def test_noise_depends_only_on_the_generator(pair):
    _, fake = pair
    a = R.apply_variant(R.Variant("noise", 0.01), fake, lambda x: None, np.random.default_rng(7))[0]
    b = R.apply_variant(R.Variant("noise", 0.01), fake, lambda x: None, np.random.default_rng(7))[0]
    np.testing.assert_array_equal(a, b)


# ---- disorganization ------------------------------------------------------------------------------


def test_disorganize_moves_tiles_as_told():
    a = np.array([[1, 1, 2, 2],
                  [1, 1, 2, 2],
                  [3, 3, 4, 4],
                  [3, 3, 4, 4]])
    out = R.disorganize(a, 2, np.array([3, 2, 1, 0]))  # position j gets tile order[j]
    np.testing.assert_array_equal(out, [[4, 4, 3, 3], [4, 4, 3, 3], [2, 2, 1, 1], [2, 2, 1, 1]])
    np.testing.assert_array_equal(R.disorganize(a, 2, np.array([1, 0, 3, 2])), [[2, 2, 1, 1], [2, 2, 1, 1], [4, 4, 3, 3], [4, 4, 3, 3]])


def test_disorganize_crops_odd_sizes_to_whole_tiles():
    a = np.arange(5 * 7).reshape(5, 7)
    out = R.disorganize(a, 2, np.array([0, 1, 2, 3]))
    np.testing.assert_array_equal(out, a[:4, :6])
    assert R.disorganize(np.zeros((9, 9, 3)), 3, np.arange(9)).shape == (9, 9, 3)


def test_disorganize_shuffles_image_and_ground_truth_identically(pair):
    real, fake = pair
    variant = R.Variant(R.DISORGANIZE, 2)
    image, gt = R.apply_variant(variant, fake, lambda x: partial_manipulation_map(real, x), np.random.default_rng(1))
    order = R.disorganize_permutation(2, np.random.default_rng(1))
    np.testing.assert_array_equal(image, R.disorganize(fake, 2, order))
    # the shuffled GT is Eq. 7 of the equally shuffled real and fake: the same pixels, so the same
    # values (Eq. 7 is elementwise); the tolerance only covers float32 rounding on other CPUs
    np.testing.assert_allclose(gt, partial_manipulation_map(R.disorganize(real, 2, order), image), rtol=1e-6, atol=1e-7)
    assert not np.array_equal(image, fake[: image.shape[0], : image.shape[1]])


def test_permutations_are_never_the_identity():
    rng = np.random.default_rng(0)
    for _ in range(50):
        assert (R.disorganize_permutation(2, rng) != np.arange(4)).any()
    assert R.disorganize_permutation(1, rng).tolist() == [0]


# ---- γ in the runner -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep(locator, dataset):
    settings = EvalSettings(robustness={"blur": (1, 7), "lowres": (1.0,), "noise": (0.0,), "disorganize": (1, 2), "jpeg": (30,)})
    return evaluate(locator, load_samples(dataset), settings)


def test_gamma_is_one_at_identity_levels(sweep):
    for test, level in (("blur", 1), ("lowres", 1.0), ("noise", 0.0), ("disorganize", 1)):
        entry = sweep.robustness[test]
        ratios = entry["gamma"][entry["levels"].index(level)]
        for key in ("acc", "coss", "psnr", "ssim", "iou", "dice", "pbca", "iinc", "auc"):
            assert ratios[key] == pytest.approx(1.0, abs=1e-12), (test, key)


def test_gamma_is_degraded_over_clean(sweep):
    entry = sweep.robustness["blur"]
    degraded = entry["metrics"][entry["levels"].index(7)]
    ratios = entry["gamma"][entry["levels"].index(7)]
    for key in ("acc", "coss", "psnr", "ssim"):
        assert ratios[key] == pytest.approx(degraded[key] / sweep.metrics[key])
    assert ratios["ssim"] < 1.0  # a blur this strong on 40-pixel images changes the maps
    assert sweep.robustness["jpeg"]["parameter"].startswith("quality")


def test_the_red_model_is_location_independent(sweep):
    entry = sweep.robustness["disorganize"]
    assert entry["gamma"][entry["levels"].index(2)]["coss"] == pytest.approx(1.0, abs=0.05)


def test_degrading_only_fakes_keeps_real_images_clean(locator, dataset):
    # noise this strong puts red values into the real images: the red model then flags them
    samples = load_samples(dataset)
    both = evaluate(locator, samples, EvalSettings(robustness={"noise": (0.5,)}))
    fakes = evaluate(locator, samples, EvalSettings(robustness={"noise": (0.5,)}, degrade_reals=False))
    assert both.robustness["noise"]["metrics"][0]["real_acc"] < 1.0
    assert fakes.robustness["noise"]["metrics"][0]["real_acc"] == 1.0
    # real images are not run again: their clean scores stand for every level
    assert fakes.timings["evaluations"] == len(samples) + sum(s.label for s in samples)
    assert both.timings["evaluations"] == 2 * len(samples)


def test_gamma_of_an_undefined_or_zero_clean_value_is_nan():
    g = R.gamma({"acc": 0.0, "auc": math.nan, "coss": 0.5}, {"acc": 0.3, "auc": 0.9, "coss": 0.25})
    assert math.isnan(g["acc"]) and math.isnan(g["auc"]) and g["coss"] == 0.5


# ---- parsing, outputs ---------------------------------------------------------------------------------


def test_parsing_tests_and_levels():
    assert R.parse_tests("jpeg, blur") == ("jpeg", "blur")
    assert R.parse_tests("all") == R.TESTS
    assert R.parse_levels("jpeg=90,75") == ("jpeg", (90, 75))
    assert R.parse_levels("noise=0,0.001") == ("noise", (0.0, 0.001))
    with pytest.raises(FakeLocatorError, match="unknown robustness test"):
        R.parse_tests("jpeg,rain")
    with pytest.raises(FakeLocatorError, match="odd"):
        R.parse_levels("blur=4")
    with pytest.raises(FakeLocatorError, match="1..100"):
        R.parse_levels("jpeg=0")
    with pytest.raises(FakeLocatorError, match="integers"):
        R.parse_levels("disorganize=2.5")
    with pytest.raises(FakeLocatorError, match="TEST=L1"):
        R.parse_levels("jpeg")


def test_default_levels_are_valid_and_include_the_model_cards_jpeg_75():
    for name, levels in R.DEFAULT_LEVELS.items():
        for level in levels:
            R.check_level(name, level)
    assert 75 in R.DEFAULT_LEVELS["jpeg"]


def test_csv_and_plot(sweep, tmp_path):
    rows = R.csv_rows("m", "d", sweep.metrics, sweep.robustness)
    R.write_csv(rows, tmp_path / "r.csv")
    with open(tmp_path / "r.csv") as f:
        read = list(csv.DictReader(f))
    blur7 = {r["metric"]: r for r in read if r["test"] == "blur" and r["level"] == "7"}
    assert float(blur7["coss"]["gamma"]) == pytest.approx(sweep.robustness["blur"]["gamma"][1]["coss"])
    assert read[0].keys() == {"model", "dataset", "test", "level", "metric", "value", "clean", "gamma"}
    png = R.plot(sweep.robustness, tmp_path / "r.png", title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
