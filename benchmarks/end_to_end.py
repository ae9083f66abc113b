"""End to end through the runtime's own pipeline: encoded JPEG bytes in, full-resolution maps out.

This is ``Locator.locate`` / ``locate_iter`` exactly as a user calls them (decoding threads,
batching, preprocessing, inference, upsampling threads; see ``fakelocator.runtime.pipeline``),
measured two ways after a streamed warm-up of ``warmup`` batches:

- latency: ``iterations`` calls of ``locator.locate(batch)``, each timed from the call to the last
  result (so the stages of one call overlap only within that call);
- throughput: one ``locate_iter`` stream of ``iterations × batch`` images, images / wall time, the
  steady state of a video or bucket ingestion loop where decoding the next batch overlaps the
  inference of this one; with the process's CPU time per image alongside.

Writing maps to disk (trt-locate's job) is not part of it; the ``write`` stage measures it alone.
"""

from __future__ import annotations

import time
from typing import Callable

from fakelocator.benchmarks.inputs import InputPool
from fakelocator.benchmarks.stats import measure, summarize, throughput

RUNTIME_TIMINGS = ("decode", "preprocess", "infer", "upsample")
NATIVE_TIMINGS = ("decode", "tile", "infer", "stitch")


def _check(results) -> None:
    for r in results:
        if r.error is not None:
            raise RuntimeError(f"the benchmark input {r.source} failed: {r.error}")


class Ticker:
    """Says ``done/total images`` through ``progress`` at most every ``every_s`` seconds, so that a
    measurement that takes minutes (a slow model on large inputs) is seen to advance."""

    def __init__(self, progress: Callable[[str], None] | None, label: str, total: int, every_s: float = 15.0,
                 clock: Callable[[], float] = time.perf_counter):
        self.progress, self.label, self.total, self.every_s, self.clock = progress, label, total, every_s, clock
        self.done, self.last = 0, clock()

    def add(self, images: int) -> None:
        self.done += images
        if self.progress is not None and self.clock() - self.last >= self.every_s:
            self.last = self.clock()
            self.progress(f"{self.label}: {self.done}/{self.total} images")


def measure_end_to_end(
    locator, pool: InputPool, *, batch: int, iterations: int, warmup: int, clock: Callable[[], float] = time.perf_counter,
    progress: Callable[[str], None] | None = None, label: str = "end to end", every_s: float = 15.0,
) -> dict:
    """Latency of ``locate(batch)`` calls and throughput of a ``locate_iter`` stream (module docstring).

    ``progress`` hears ``label: done/total images`` at most every ``every_s`` seconds.
    """
    ticker = Ticker(progress, label, (warmup + 2 * iterations) * batch, every_s)
    if warmup:
        _check(locator.locate_iter(pool.items(0, warmup * batch), on_error="record"))
        ticker.add(warmup * batch)
    offset = warmup * batch

    def one_call(i: int) -> None:
        _check(locator.locate(pool.items(offset + i * batch, batch), on_error="record"))
        ticker.add(batch)

    latency = summarize(measure(one_call, iterations=iterations, warmup=0, clock=clock), images=batch)

    count = iterations * batch
    contract = getattr(locator, "contract", None)
    keys = NATIVE_TIMINGS if contract is not None and contract.native else RUNTIME_TIMINGS
    recorded = {k: 0.0 for k in keys}
    cpu_start, start = time.process_time(), clock()
    done = 0
    for r in locator.locate_iter((pool.item(k) for k in range(count)), on_error="record"):
        if r.error is not None:
            raise RuntimeError(f"the benchmark input {r.source} failed: {r.error}")
        done += 1
        ticker.add(1)
        for k in keys:
            recorded[k] += r.timings.get(k, 0.0)
    seconds, cpu_seconds = clock() - start, time.process_time() - cpu_start
    return {
        "latency": latency.to_dict(),
        "images": done,
        "seconds": seconds,
        "images_per_s": throughput(done, seconds),
        # CPU time of this process (all its threads) per image during the stream: unlike wall time it
        # hardly depends on what else runs on the machine, so cores × 1000 / cpu_ms_per_image bounds
        # what the same machine, idle, could reach (threads spin-waiting count as work here).
        "cpu_ms_per_image": cpu_seconds * 1000 / done,
        # What the runtime itself records per result (LocateResult.timings), averaged: in a pipeline
        # these overlap and include waiting for the CPU, so they need not add up to 1 / throughput.
        "runtime_timings_ms_per_image": {k: v / done for k, v in recorded.items()},
    }
