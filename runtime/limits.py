"""Bounds on what a caller can ask the runtime to start: thread counts.

``--threads 100000`` would start that many threads (each with its own stack) before any work; a
negative count means nothing. Counts are checked against a bound relative to the CPUs this process
may run on, generous enough for oversubscription (I/O-bound decoding and writing) and far below
what exhausts memory.
"""

from __future__ import annotations

import os

from fakelocator.errors import FakeLocatorError


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def max_threads() -> int:
    """The largest thread count accepted for one pool: 4 per usable CPU, at least 16."""
    return max(16, 4 * usable_cpus())


def check_threads(name: str, value: object, *, allow_zero: bool = False) -> int:
    """``value`` as a thread count in [1 (or 0 when ``allow_zero``), max_threads()]; else a FakeLocatorError naming ``name``."""
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise FakeLocatorError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= max_threads():
        raise FakeLocatorError(
            f"{name} must be between {low} and {max_threads()} (4 per usable CPU, at least 16), got {value}"
        )
    return value


#: The largest batch accepted: beyond it a batch is no faster per input on any backend, and its
#: buffers (input, maps, per-tile outputs) grow with it; 4096 224² inputs are 2.5 GB of float32.
MAX_BATCH = 4096


def physical_memory() -> int | None:
    """Bytes of RAM on this machine, None when the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_batch(batch_size: object, input_size: tuple[int, int]) -> int:
    """``batch_size`` as a batch in [1, MAX_BATCH] whose network input, (batch, 3, h, w) float32,
    takes at most a quarter of the machine's memory (maps and outputs come on top); else a
    FakeLocatorError that says what it would take."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise FakeLocatorError(f"batch_size must be an integer, got {batch_size!r}")
    if not 1 <= batch_size <= MAX_BATCH:
        raise FakeLocatorError(f"batch_size must be between 1 and {MAX_BATCH}, got {batch_size}")
    h, w = input_size
    need = batch_size * 3 * h * w * 4
    memory = physical_memory()
    if memory is not None and need > memory // 4:
        raise FakeLocatorError(
            f"batch_size {batch_size} of {h}x{w} inputs needs {need / 2**30:.1f} GiB for the network input alone, "
            f"more than a quarter of this machine's {memory / 2**30:.1f} GiB; use a smaller --batch"
        )
    return batch_size
