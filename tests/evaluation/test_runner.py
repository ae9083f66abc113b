"""The runner: a hand-made model on a generated dataset gives the metrics computed by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fakelocator.contract import resize_bilinear
from fakelocator.evaluation import metrics as M
from fakelocator.evaluation.runner import EvalSettings, SharedImages, _group_order, evaluate, evaluation_count
from fakelocator.errors import InputError
from fakelocator.runtime.decode import load_image
from fakelocator.training.samples import Sample, load_samples, read_image


def eq7_by_hand(real: np.ndarray, fake: np.ndarray) -> np.ndarray:
    d = np.abs(real.astype(np.float64) - fake.astype(np.float64))
    return (0.299 * d[..., 0] + 0.587 * d[..., 1] + 0.114 * d[..., 2]) / 255.0


def expected(by_hand, samples: list[Sample], *, at_model_resolution: bool = False, threshold: float = 0.5, binarize: float = 0.1):
    """Score, classification and localization means computed without the runner."""
    scores, labels, rows = [], [], []
    for s in samples:
        image = read_image(s.image)
        small = by_hand.small_map(image)
        scores.append(float(small.max()))  # the model's score is the maximum of its map
        labels.append(s.label)
        if s.kind == "real":
            continue
        gt = eq7_by_hand(read_image(s.real), image) if s.kind == "partial" else np.ones(image.shape[:2])
        if at_model_resolution:
            pred, gt = small, resize_bilinear(gt.astype(np.float32), *small.shape)
        else:
            pred = by_hand.full_map(image)
        rows.append(M.localization_metrics(pred, gt, binarize))
    c = M.classification_metrics(scores, labels, threshold)
    return np.array(scores), c, M.mean_metrics(rows)


@pytest.fixture(scope="module")
def samples(dataset):
    return load_samples(dataset)


@pytest.fixture(scope="module")
def clean(locator, samples):
    return evaluate(locator, samples, EvalSettings())


def test_full_resolution_metrics_equal_the_hand_computation(clean, samples, by_hand):
    scores, c, loc = expected(by_hand, samples)
    got = np.array([r["score"] for r in clean.records])
    np.testing.assert_allclose(got, scores, atol=1e-5)
    for key in ("acc", "real_acc", "fake_acc", "auc", "eer"):
        assert clean.metrics[key] == pytest.approx(getattr(c, key), abs=1e-9), key
    for key, value in loc.items():
        assert clean.metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    assert (clean.metrics["n_real"], clean.metrics["n_fake"], clean.metrics["n_localized"]) == (6, 8, 8)


def test_the_red_model_solves_the_generated_dataset(clean):
    m = clean.metrics
    assert m["acc"] == 1.0 and m["auc"] == 1.0 and m["eer"] == 0.0
    assert m["coss"] > 0.9 and m["iou"] > 0.8


def test_model_resolution_compares_the_network_map_with_the_resized_ground_truth(locator, samples, by_hand):
    got = evaluate(locator, samples, EvalSettings(at_model_resolution=True))
    _, _, loc = expected(by_hand, samples, at_model_resolution=True)
    for key, value in loc.items():
        assert got.metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key


def test_thresholds_are_applied(locator, samples, by_hand):
    got = evaluate(locator, samples, EvalSettings(threshold=0.999, binarize_threshold=0.5))
    scores, c, loc = expected(by_hand, samples, threshold=0.999, binarize=0.5)
    assert got.metrics["acc"] == pytest.approx(c.acc) and got.metrics["acc"] < 1.0
    assert got.metrics["iou"] == pytest.approx(loc["iou"], rel=1e-4, abs=1e-5)


def test_breakdown_by_kind_and_property(clean):
    rows = {(r["group"], r["name"]): r for r in clean.breakdown}
    assert set(rows) == {("kind", "real"), ("kind", "partial"), ("kind", "entire"), ("property", "eyes"), ("property", "mouth")}
    assert [rows[k]["n"] for k in (("kind", "real"), ("kind", "partial"), ("kind", "entire"))] == [6, 6, 2]
    assert rows[("property", "eyes")]["n"] + rows[("property", "mouth")]["n"] == 6
    assert math.isnan(rows[("kind", "real")]["coss"]) and math.isnan(rows[("kind", "real")]["auc"])
    assert rows[("kind", "partial")]["acc"] == 1.0 and rows[("kind", "partial")]["auc"] == 1.0
    by_hand = np.mean([r["coss"] for r in clean.records if r["kind"] == "partial"])
    assert rows[("kind", "partial")]["coss"] == pytest.approx(by_hand)


def test_each_file_is_read_once_however_many_variants_use_it(locator, samples):
    got = evaluate(locator, samples, EvalSettings(robustness={"blur": (1, 3), "disorganize": (2,)}))
    assert got.timings["images_read"] == len({p for s in samples for p in (s.image, s.real) if p is not None})
    assert got.timings["evaluations"] == 4 * len(samples)


def test_images_are_decoded_as_trt_locate_decodes_them_exif_orientation_included(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :20] = 255  # a white band on the left, as stored
    image = pil.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "rotated.jpg"
    image.save(path, format="JPEG", exif=exif.tobytes())
    got = SharedImages({path: 1}).get(path)
    shown, order, _ = load_image(str(path))
    assert got.shape == shown.shape == (80, 40, 3) and order == "BGR"
    np.testing.assert_array_equal(got, shown[:, :, ::-1])  # the same pixels, in RGB
    assert got[:20].mean() > 200 and got[-20:].mean() < 50  # the band is on top, as viewers show it


def test_real_images_come_right_before_their_fakes(samples):
    order = [samples[i] for i in _group_order(samples)]
    for i, s in enumerate(order):
        if s.kind == "partial":
            assert order[i - 1].image == s.real


def test_shared_images_drops_an_image_after_its_last_use(tmp_path):
    reads = []
    shared = SharedImages({Path("a"): 2, Path("b"): 1}, reader=lambda p: reads.append(p) or np.zeros((1, 1, 3), np.uint8))
    shared.get(Path("a")), shared.get(Path("a")), shared.get(Path("b"))
    assert reads == [Path("a"), Path("b")] and len(shared) == 2
    shared.release(Path("a"))
    assert len(shared) == 2
    shared.release(Path("a")), shared.release(Path("b"))
    assert len(shared) == 0


def test_an_unreadable_image_is_an_error_and_the_rest_is_evaluated(locator, samples, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    got = evaluate(locator, samples + [Sample(broken, "real")], EvalSettings())
    with pytest.raises(InputError) as runtime_error:
        load_image(str(broken))  # the reason trt-locate gives for the same file
    assert [e["image"] for e in got.errors] == [str(broken)] and runtime_error.value.reason in got.errors[0]["reason"]
    assert got.metrics["n_real"] == 6 and got.records[-1]["score"] is None


@pytest.mark.parametrize("degrade_reals", [True, False])
def test_progress_counts_every_evaluation(locator, samples, degrade_reals):
    ticks = []
    settings = EvalSettings(robustness={"blur": (1, 3)}, degrade_reals=degrade_reals)
    evaluate(locator, samples, settings, progress=ticks.append)
    n_fake = sum(s.label for s in samples)
    assert sum(ticks) == evaluation_count(samples, settings) == (3 * len(samples) if degrade_reals else len(samples) + 2 * n_fake)


def test_examples_are_written(locator, samples, tmp_path):
    got = evaluate(locator, samples, EvalSettings(save_maps=3), examples_dir=tmp_path)
    assert len(got.examples) == 3
    import cv2

    figure = cv2.imread(got.examples[0])
    assert figure is not None and figure.shape[1] > 4 * figure.shape[0]  # five panels side by side
