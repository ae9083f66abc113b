"""The memory run: samples as results come out, growth measured from the end of warm-up."""

import pytest

from fakelocator.benchmarks import memory
from fakelocator.benchmarks.inputs import make_pool


class FakeLocator:
    batch_size = 4

    class backend:
        name, device = "fake", "cpu"

    def __init__(self):
        self.seen = 0

    def locate_iter(self, images):
        from fakelocator.runtime.results import LocateResult

        for _ in images:
            self.seen += 1
            yield LocateResult("<bytes>")


def test_growth_is_measured_from_the_end_of_warmup(monkeypatch):
    locator = FakeLocator()
    # 1 MB per image during the first 10 images (warm-up: caches fill), then a 0.5 MB leak per image
    monkeypatch.setattr(memory, "rss_bytes", lambda: int((100 + min(locator.seen, 10) + 0.5 * max(0, locator.seen - 10)) * memory.MB))
    result = memory.memory_run(locator, make_pool("direct224", size=1), images=100, samples=100)
    assert result["images"] == 100 and locator.seen == 100 and len(result["samples"]) == 100
    assert result["rss"]["at_warmup_mb"] == pytest.approx(110.0)
    assert result["rss"]["growth_mb"] == pytest.approx(45.0) and result["rss"]["end_mb"] == pytest.approx(155.0)
    assert result["rss"]["trend_mb_per_1000"] == pytest.approx(500.0)  # 0.5 MB per image
    assert result["gpu"] is None


def test_the_resident_set_size_is_read():
    assert memory.rss_bytes() > 10 * memory.MB
    assert memory.gpu_used_bytes("cpu") is None


def test_a_failed_input_stops_the_run():
    class Failing(FakeLocator):
        def locate_iter(self, images):
            from fakelocator.runtime.results import LocateResult

            for _ in images:
                yield LocateResult("<bytes 0>", error="corrupt JPEG data")

    with pytest.raises(RuntimeError, match="corrupt"):
        memory.memory_run(Failing(), make_pool("direct224", size=1), images=10)
