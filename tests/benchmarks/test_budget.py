"""The benchmark fits its time budget: it times the model first, sizes the plan, says it, and shows
progress inside a measurement (a slow model on 1080p must not look hung)."""

from dataclasses import replace

import pytest

from fakelocator.benchmarks import budget
from fakelocator.benchmarks.bench import BenchConfig, run_bench
from fakelocator.benchmarks.end_to_end import Ticker, measure_end_to_end
from fakelocator.benchmarks.inputs import KINDS, make_pool

# The default model on the development machine (2 CPU cores): 0.7 images/s on 1080p in native
# (45 tiles each), one 256-pixel tile for the small inputs, 26 images/s on 1080p in fit.
DEFAULT_MODEL_ON_A_CPU = budget.Speeds(
    per_input={("1080p", "native"): 1 / 0.7, ("crop256", "native"): 0.05, ("direct224", "native"): 0.05},
    baseline={"1080p": 1 / 26, "crop256": 0.03, "direct224": 0.03},
)


def test_the_default_plan_for_the_default_model_fits_the_default_budget(tmp_path):
    asked = BenchConfig(out=tmp_path, device="cpu")
    assert budget.predict(asked, DEFAULT_MODEL_ON_A_CPU, ("native",))["total"] > 3600  # as configured: hours
    planned, prediction = budget.fit(asked, DEFAULT_MODEL_ON_A_CPU, ("native",), asked.budget_s)
    assert prediction["total"] <= asked.budget_s == 300
    assert planned.inputs == asked.inputs and 1 in planned.batches  # every input kind still measured
    for name in ("iterations", "min_images", "warmup", "baseline_images", "memory_run"):
        assert getattr(planned, name) <= getattr(asked, name)  # counts are lowered, never raised
    assert set(planned.batches) <= set(asked.batches)


def test_a_fast_model_keeps_the_plan_as_asked(tmp_path):
    asked = BenchConfig(out=tmp_path, device="cpu", memory_run=0)
    fast = budget.Speeds({(k, "fit"): 1e-5 for k in KINDS}, {k: 1e-5 for k in KINDS})
    planned, prediction = budget.fit(asked, fast, ("fit",), 300, others=(fast,))
    assert planned == asked and prediction["total"] <= 300


def test_a_memory_run_too_short_to_show_growth_is_skipped_not_shrunk(tmp_path):
    asked = BenchConfig(out=tmp_path, device="cpu")
    slow = budget.Speeds({k: 10.0 for k in DEFAULT_MODEL_ON_A_CPU.per_input}, DEFAULT_MODEL_ON_A_CPU.baseline)
    planned, _ = budget.fit(asked, slow, ("native",), 300)
    assert planned.memory_run == 0


def test_the_plan_line_says_when_even_the_smallest_plan_is_over_the_budget(tmp_path):
    config = BenchConfig(out=tmp_path, device="cpu")
    slow = budget.Speeds({k: 100.0 for k in DEFAULT_MODEL_ON_A_CPU.per_input}, DEFAULT_MODEL_ON_A_CPU.baseline)
    planned, prediction = budget.fit(config, slow, ("native",), 300)
    assert planned.batches == (1,) and prediction["total"] > 300
    assert "over it" in budget.describe(planned, prediction, 300)


def test_progress_is_said_inside_a_measurement(mean_model):
    from fakelocator.runtime.locator import Locator

    messages = []
    with Locator.load(mean_model, backend="onnxruntime", batch_size=2) as locator:
        measure_end_to_end(locator, make_pool("direct224", size=2), batch=2, iterations=2, warmup=1,
                           progress=messages.append, label="m", every_s=0)
    assert messages[-1] == "m: 10/10 images" and len(messages) > 1


def test_the_ticker_speaks_at_most_every_so_often(clock):
    messages = []
    ticker = Ticker(messages.append, "x", 100, every_s=10, clock=clock)
    for _ in range(10):
        clock.advance(3000)
        ticker.add(10)
    assert messages == ["x: 40/100 images", "x: 80/100 images"]


def test_the_benchmark_says_its_plan_before_measuring_and_records_it(mean_model, tmp_path):
    messages = []
    config = BenchConfig(out=tmp_path, model=mean_model, backends=("onnxruntime",), inputs=("direct224",), batches=(1, 2, 64),
                         iterations=50, baseline=False, memory_run=0, pool_size=2, threads=1, device="cpu", budget_s=2.0)
    results = run_bench(config, progress=messages.append)
    plan = next(i for i, m in enumerate(messages) if m.startswith("plan: "))
    first_measurement = next(i for i, m in enumerate(messages) if ": measuring (" in m)
    assert plan < first_measurement and "min of measuring" in messages[plan]
    assert results["plan"]["budget_s"] == 2.0 and results["plan"]["predicted_s"]["total"] > 0
    ran = {r["batch"] for r in results["runs"]}
    assert ran == set(results["config"]["batches"]) <= {1, 2, 64}
    if results["plan"]["changed_for_the_budget"]:
        assert results["config"]["iterations"] <= 50
    from fakelocator.benchmarks.report import markdown

    assert "- plan: budget 2 s, predicted" in markdown(results)


def test_no_budget_runs_the_plan_as_asked(mean_model, tmp_path):
    config = BenchConfig(out=tmp_path, model=mean_model, backends=("onnxruntime",), inputs=("direct224",), batches=(1,),
                         iterations=2, min_images=0, warmup=1, baseline=False, memory_run=0, pool_size=2, threads=1,
                         device="cpu", budget_s=0)
    results = run_bench(config, progress=lambda m: None)
    assert results["plan"]["changed_for_the_budget"] == {} and results["runs"][0]["iterations"] == 2


def test_a_negative_budget_is_refused(tmp_path):
    from fakelocator.errors import FakeLocatorError

    with pytest.raises(FakeLocatorError, match="budget"):
        BenchConfig(out=tmp_path, budget_s=-1)
    assert replace(BenchConfig(out=tmp_path), budget_s=0).budget_s == 0


def test_under_the_default_backends_one_too_slow_for_the_budget_is_left_out_and_said(tiny_files, tmp_path):
    onnx_path, _ = tiny_files  # onnxruntime and torch can both run it
    config = BenchConfig(out=tmp_path, model=onnx_path, inputs=("direct224",), batches=(1,), iterations=2, min_images=0,
                         warmup=1, baseline=False, memory_run=0, pool_size=2, threads=1, device="cpu", budget_s=1e-3)
    messages = []
    results = run_bench(config, progress=messages.append)
    assert len({r["backend"] for r in results["runs"]}) == 1  # the first backend always runs
    left_out = [s for s in results["skipped"] if "too slow for the time budget" in s["reason"]]
    assert len(left_out) == 1 and any("left out" in m for m in messages)

