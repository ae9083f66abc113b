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
