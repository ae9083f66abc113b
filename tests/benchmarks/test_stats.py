"""Percentiles, throughput and warm-up exclusion, on a fake clock."""

import pytest

from fakelocator.benchmarks.stats import measure, summarize, throughput


def test_percentiles_interpolate_linearly_between_samples():
    s = summarize([float(v) for v in range(1, 101)], images=1)  # 1 … 100 ms
    assert (s.p50_ms, s.p90_ms, s.p99_ms) == pytest.approx((50.5, 90.1, 99.01))
    assert (s.min_ms, s.max_ms, s.mean_ms, s.samples) == (1.0, 100.0, 50.5, 100)


def test_percentiles_do_not_depend_on_sample_order():
    assert summarize([30.0, 10.0, 20.0]) == summarize([10.0, 20.0, 30.0])


def test_throughput_is_images_per_sample_over_the_median():
    s = summarize([10.0, 20.0, 40.0], images=8)  # batches of 8 images; median 20 ms
    assert s.images_per_s == pytest.approx(400.0)
    assert s.ms_per_image == pytest.approx(2.5)
    assert s.to_dict()["images_per_s"] == pytest.approx(400.0)
    assert throughput(1000, 4.0) == 250.0


def test_measure_excludes_the_warmup_calls(clock):
    costs = [500.0, 300.0, 10.0, 12.0, 11.0]  # two slow warm-up calls (module load, first touch)

    def fn(i):
        clock.advance(costs[i])

    samples = measure(fn, iterations=3, warmup=2, clock=clock)
    assert samples == pytest.approx([10.0, 12.0, 11.0])
    assert summarize(samples).max_ms == pytest.approx(12.0)


def test_measure_passes_the_call_index_and_runs_warmup_plus_iterations(clock):
    seen = []
    measure(seen.append, iterations=4, warmup=1, clock=clock)
    assert seen == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("iterations, warmup", [(0, 1), (3, -1)])
def test_measure_refuses_nonsense(iterations, warmup, clock):
    with pytest.raises(ValueError):
        measure(lambda i: None, iterations=iterations, warmup=warmup, clock=clock)


def test_nothing_to_summarize_is_an_error():
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        throughput(10, 0.0)
