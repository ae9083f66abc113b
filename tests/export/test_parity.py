"""The parity report: what it measures, which bounds it applies, which inputs it uses."""

import numpy as np
import pytest

from fakelocator.contract import Preprocessing
from fakelocator.export.parity import (
    FP16,
    FP32,
    BackendRunner,
    Case,
    OneByOne,
    bounds_for,
    compare,
    diff_outputs,
    standard_cases,
)


def outputs(rng, n=2, size=8):
    return {
        "map": rng.uniform(0, 1, (n, 1, size, size)).astype(np.float32),
        "score": rng.uniform(0, 1, (n, 1)).astype(np.float32),
        "features": rng.normal(0, 5, (n, 4)).astype(np.float32),
    }


class Fixed:
    """A runner returning given outputs for any batch."""

    def __init__(self, name, out):
        self.name, self.out = name, out

    def __call__(self, batch):
        return self.out


def test_identical_outputs_pass_with_zero_differences(rng):
    out = outputs(rng)
    diffs, failures = diff_outputs(out, out, FP32)
    assert failures == []
    assert diffs["map"].max_abs == 0 and diffs["map"].cosine == pytest.approx(1.0) and diffs["score"].max_abs == 0


def test_a_map_off_by_2e4_fails_fp32_but_passes_fp16(rng):
    ref = outputs(rng)
    got = {k: v.copy() for k, v in ref.items()}
    got["map"][0, 0, 3, 3] += 2e-4
    diffs, failures = diff_outputs(ref, got, FP32)
    assert diffs["map"].max_abs == pytest.approx(2e-4, rel=1e-3)
    assert failures == ["max|Δmap| 2.00e-04 > 0.0001"]
    assert diff_outputs(ref, got, FP16)[1] == []


def test_cosine_catches_a_faint_map_that_is_wrong_everywhere_by_a_little(rng):
    ref = outputs(rng)
    ref["map"] = ref["map"] * 0.01  # a real image: the map is faint everywhere
    got = dict(ref, map=np.clip(ref["map"] + rng.uniform(-0.009, 0.009, ref["map"].shape), 0, 1).astype(np.float32))
    diffs, failures = diff_outputs(ref, got, FP16)
    assert diffs["map"].max_abs < FP16.map_max_abs
    assert [f for f in failures if f.startswith("COSS")] == failures and failures


def test_nan_shape_and_missing_outputs_are_failures(rng):
    ref = outputs(rng)
    nan = {k: v.copy() for k, v in ref.items()}
    nan["map"][0, 0, 0, 0] = np.nan
    assert "map has NaN or inf" in diff_outputs(ref, nan, FP16)[1]
    assert "candidate has no 'score' output" in diff_outputs(ref, {"map": ref["map"]}, FP16)[1]
    short = dict(ref, score=ref["score"][:1])
    assert any("score shape" in f for f in diff_outputs(ref, short, FP16)[1])


def test_feature_differences_are_relative_to_the_feature_scale(rng):
    ref = outputs(rng)
    got = dict(ref, features=ref["features"] * (1 + 5e-3))
    diffs, failures = diff_outputs(ref, got, FP16)
    assert diffs["features"].relative and diffs["features"].max_abs == pytest.approx(5e-3, rel=1e-2)
    assert failures == []
    assert any(f.startswith("features") for f in diff_outputs(ref, got, FP32)[1])


def test_report_lists_every_case_and_the_verdict(rng):
    out = outputs(rng)
    cases = [Case("a", np.zeros((2, 3, 8, 8), np.float32)), Case("b", np.zeros((2, 3, 8, 8), np.float32))]
    report = compare(Fixed("ref", out), Fixed("cand", out), cases, FP32)
    assert report.passed and [r.case for r in report.results] == ["a", "b"]
    text = report.format()
    assert text.startswith("parity: cand vs ref (bounds fp32") and text.rstrip().endswith("PASS")
    bad = dict(out, score=out["score"] + 1)
    failed = compare(Fixed("ref", out), Fixed("cand", bad), cases, FP16)
    assert not failed.passed and failed.failures[0].startswith("a: max|Δscore|")
    assert "FAIL" in failed.format()
    assert failed.worst("score") == pytest.approx(1.0)


def test_bounds_follow_the_least_precise_side():
    assert bounds_for("fp32", "fp32") is FP32
    assert bounds_for("fp32", "fp16") is FP16 and bounds_for("tf32") is FP16


def test_standard_cases_cover_random_inputs_images_and_photographs():
    contract = Preprocessing(height=32, width=48)
    cases = standard_cases(contract, batch=3, seed=1, extra_sizes=[(40, 56)])
    names = [c.name for c in cases]
    assert names == [
        "random normal N=3", "random 8-bit images N=3", "photos: astronaut,coffee,chelsea", "photos: rocket",
        "random normal N=1", "random normal N=3 at 40x56",
    ]
    assert all(c.batch.dtype == np.float32 for c in cases)
    assert cases[2].batch.shape == (3, 3, 32, 48) and cases[-1].batch.shape == (3, 3, 40, 56)
    again = standard_cases(contract, batch=3, seed=1, extra_sizes=[(40, 56)])
    assert all(np.array_equal(a.batch, b.batch) for a, b in zip(cases, again))
    assert [c.name for c in standard_cases(contract, batch=1, real=False)] == ["random normal N=1", "random 8-bit images N=1"]


def test_one_by_one_runs_each_image_alone():
    seen = []

    class Runner:
        name = "r"

        def __call__(self, batch):
            seen.append(len(batch))
            return {"map": batch[:, :1], "score": batch[:, 0, :1, 0]}

    batch = np.arange(3 * 3 * 2 * 2, dtype=np.float32).reshape(3, 3, 2, 2)
    out = OneByOne(Runner())(batch)
    assert seen == [1, 1, 1] and np.array_equal(out["map"], batch[:, :1])


def test_backend_runner_splits_large_batches_and_pads_small_ones():
    from fakelocator.runtime.engine_sidecar import ShapeProfile

    class Backend:
        name = "tensorrt"
        max_batch = 4
        profile = ShapeProfile("image", (2, 3, 2, 2), (4, 3, 2, 2), (4, 3, 2, 2))
        info = type("Info", (), {"path": "m.engine"})()
        calls = []

        def infer(self, batch):
            assert 2 <= len(batch) <= 4
            self.calls.append(len(batch))
            return {"map": batch[:, :1].copy(), "score": batch[:, 0, 0, :1].copy()}

    backend = Backend()
    runner = BackendRunner(backend)
    batch = np.random.default_rng(0).normal(size=(5, 3, 2, 2)).astype(np.float32)
    out = runner(batch)
    assert backend.calls == [4, 2] and np.array_equal(out["map"], batch[:, :1])
    assert runner(batch[:1])["map"].shape == (1, 1, 2, 2) and backend.calls[-1] == 2


def test_without_onnxruntime_the_check_says_how_to_get_it(monkeypatch):
    import sys

    from fakelocator.errors import FakeLocatorError
    from fakelocator.export.parity import onnxruntime_runner

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(FakeLocatorError, match=r"pip install 'fakelocator\[runtime\]' \(or export with --no-check\)"):
        onnxruntime_runner("m.onnx")
