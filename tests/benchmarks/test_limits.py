"""The report's limits and targets in the units they are read in."""

import pytest

from fakelocator.benchmarks.bench import limits
from fakelocator.benchmarks.report import _measured


class _Contract:
    analysis = "native"


def test_native_rows_count_the_flops_of_every_tile_of_an_image(monkeypatch):
    import fakelocator.benchmarks.bench as bench

    monkeypatch.setattr(bench, "stage_bytes", lambda h, w, c: {})
    monkeypatch.setattr(bench, "stages_for", lambda analysis: ((), ()))
    row = {"batch": 2, "device": "cpu", "precision": "fp32", "tiles_per_image": 45, "stages": {"infer": {"p50_ms": 1000.0}}}
    ceiling = {"host_copy": {"gb_per_s": 10.0}}
    # 1 GFLOP per tile, 2 images of 45 tiles in one second: 90 GFLOP/s, not 2
    assert limits(row, 10**9, ceiling, _Contract(), (1080, 1920))["achieved_tflops"] == pytest.approx(0.09)
    del row["tiles_per_image"]  # fit: one input per image
    assert limits(row, 10**9, ceiling, _Contract(), (1080, 1920))["achieved_tflops"] == pytest.approx(0.002)


def test_a_share_is_shown_as_a_percentage_against_a_percentage():
    assert _measured({"required": "< 15 %", "measured": 0.012}) == "1.2 %"
    assert _measured({"required": "< 15%", "measured": 0.5}) == "50.0 %"
    assert _measured({"required": ">= 50 images/s", "measured": 26.3}) == "26.3"
    assert _measured({"required": "< 15 %", "measured": None}) == "–"
