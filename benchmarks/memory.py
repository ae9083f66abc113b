"""Memory over a long run: does resident memory (and GPU memory) stay flat after warm-up?

A long stream of images (default 10,000, cycling through a small pool of encoded inputs so that
generating them costs nothing) goes through ``Locator.locate_iter``; the process's resident set
size, and the GPU's used memory when on a GPU, are sampled as results come out. The report gives
the memory at the end of warm-up (``warmup_fraction`` of the run, 10 % by default), the highest
value seen after it, and the growth between the two: a leak of even a few kilobytes per image
shows as tens of MB over 10,000 images, while allocator noise stays flat.
"""

from __future__ import annotations

import os
import time
from typing import Callable

import numpy as np

from fakelocator.benchmarks.inputs import InputPool
from fakelocator.benchmarks.stats import throughput

MB = 1 << 20


def rss_bytes() -> int:
    """The current resident set size of this process (Linux ``/proc/self/statm``; else the peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def gpu_used_bytes(device: str) -> int | None:
    """Memory in use on the device (all processes), from cudaMemGetInfo through cuda-python.

    Never through torch: importing it would add its own hundreds of MB to the resident set this
    run measures, and a CUDA context of its own to a process that measures ORT or TensorRT.
    """
    if not device.startswith("cuda"):
        return None
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    try:
        from fakelocator.runtime import cuda

        free, total = cuda.memory_info(index)
        return total - free
    except Exception:  # noqa: BLE001 - no driver, no cuda-python: reported as None
        return None


def growth(samples: list[tuple[int, int | None]], start: int) -> dict | None:
    """Memory from sample index ``start`` (the end of warm-up) on, in MB.

    ``growth_mb``: the highest value minus the first (what the target checks); ``trend_mb_per_1000``:
    the least-squares slope, which tells a steady leak (a positive slope) from the allocator's
    ups and downs (a flat one).
    """
    points = [(n, v) for n, v in samples[start:] if v is not None]
    if not points:
        return None
    values = [v for _, v in points]
    slope = float(np.polyfit([n for n, _ in points], values, 1)[0]) if len(points) > 1 else 0.0
    return {"at_warmup_mb": values[0] / MB, "peak_after_mb": max(values) / MB, "end_mb": values[-1] / MB,
            "growth_mb": (max(values) - values[0]) / MB, "trend_mb_per_1000": slope * 1000 / MB}


def memory_run(
    locator,
    pool: InputPool,
    *,
    images: int,
    warmup_fraction: float = 0.1,
    samples: int = 100,
    device: str = "cpu",
    clock: Callable[[], float] = time.perf_counter,
    progress: Callable[[str], None] = lambda message: None,
) -> dict:
    """Run ``images`` images through ``locator.locate_iter`` and report memory growth after warm-up."""
    if images < 10:
        raise ValueError(f"a memory run needs at least 10 images, got {images}")
    every = max(1, images // samples)
    rss: list[tuple[int, int]] = []
    gpu: list[tuple[int, int | None]] = []
    start = clock()
    done = 0
    for result in locator.locate_iter(pool.item(i) for i in range(images)):
        done += 1
        if result.error is not None:
            raise RuntimeError(f"memory run: input {done} failed: {result.error}")
        if done % every == 0 or done == images:
            rss.append((done, rss_bytes()))
            gpu.append((done, gpu_used_bytes(device)))
            if done % (every * 10) == 0:
                progress(f"memory run: {done}/{images} images, RSS {rss[-1][1] / MB:.0f} MB")
    seconds = clock() - start
    first = next(i for i, (n, _) in enumerate(rss) if n >= warmup_fraction * images)
    return {
        "images": images,
        "batch": locator.batch_size,
        "backend": locator.backend.name,
        "device": locator.backend.device,
        "input": pool.kind,
        "warmup_fraction": warmup_fraction,
        "seconds": seconds,
        "images_per_s": throughput(images, seconds),
        "rss": growth(rss, first),
        "gpu": growth(gpu, first),
        "samples": [{"images": n, "rss_mb": r / MB, "gpu_mb": None if g is None else g / MB}
                    for (n, r), (_, g) in zip(rss, gpu)],
    }
