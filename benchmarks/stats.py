"""Timed repetitions and their summary: warm-up excluded, percentiles, throughput.

Everything takes a ``clock`` (seconds, monotonic; ``time.perf_counter`` by default) so that the
arithmetic can be checked on a fake clock. Percentiles are numpy's default (linear interpolation
between the two nearest samples); with fewer than 100 samples p99 lies between the two largest.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

Clock = Callable[[], float]
PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Summary:
    """Statistics of timed samples, each covering ``images`` images (a batch)."""

    samples: int
    images: int  # images per sample
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float

    @property
    def images_per_s(self) -> float:
        """Throughput at the median: images per sample / p50."""
        return self.images / (self.p50_ms / 1000) if self.p50_ms > 0 else float("inf")

    @property
    def ms_per_image(self) -> float:
        return self.p50_ms / self.images

    def to_dict(self) -> dict:
        return {**asdict(self), "images_per_s": self.images_per_s, "ms_per_image": self.ms_per_image}


def summarize(samples_ms: Sequence[float], images: int = 1) -> Summary:
    """Summarize samples in ms, each covering ``images`` images."""
    if not len(samples_ms):
        raise ValueError("no samples to summarize")
    a = np.asarray(samples_ms, np.float64)
    p50, p90, p99 = np.percentile(a, PERCENTILES)
    return Summary(
        samples=int(a.size),
        images=int(images),
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        mean_ms=float(a.mean()),
        min_ms=float(a.min()),
        max_ms=float(a.max()),
    )


def measure(fn: Callable[[int], object], *, iterations: int, warmup: int, clock: Clock = time.perf_counter) -> list[float]:
    """Call ``fn(i)`` ``warmup + iterations`` times; the ms of the last ``iterations`` calls.

    The warm-up calls run first and are timed by nobody: module loading, allocator growth,
    kernel selection and first-touch page faults stay out of the samples.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    samples = []
    for i in range(warmup + iterations):
        t0 = clock()
        fn(i)
        ms = (clock() - t0) * 1000
        if i >= warmup:
            samples.append(ms)
    return samples


def throughput(images: int, seconds: float) -> float:
    """Images per second over a wall-clock interval."""
    if seconds <= 0:
        raise ValueError(f"a throughput needs a positive interval, got {seconds} s")
    return images / seconds
