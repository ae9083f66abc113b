"""Keep native libraries' messages off ``trt-locate``'s stderr.

libpng ("libpng warning: iCCP: known incorrect sRGB profile"), libjpeg, libtiff, FFmpeg ("moov atom
not found") and OpenCV's logger write straight to file descriptor 2 from C code, often for the very
inputs whose failure trt-locate already reports on its own line (and records in results.jsonl);
a hostile file can even get raw bytes printed that way. While the command runs, descriptor 2 points
at /dev/null and Python's ``sys.stderr`` at a duplicate of the real stderr, so the command's own
lines (progress, per-input errors, the summary, tracebacks) still reach the terminal and library
chatter does not. ``FAKELOCATOR_LIBRARY_STDERR=1`` keeps the libraries' messages (for debugging).

It is not used by the Python API: a library must not take over its host process's stderr.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

KEEP = "FAKELOCATOR_LIBRARY_STDERR"


def _fd_of(stream: object) -> int | None:
    try:
        return stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Within the block, writes to descriptor 2 from native code are discarded; ``sys.stderr`` still prints.

    Does nothing when ``sys.stderr`` is not descriptor 2 (a test's capture, an embedding host), or
    when ``FAKELOCATOR_LIBRARY_STDERR`` is set.
    """
    if os.environ.get(KEEP, "") not in ("", "0") or _fd_of(sys.stderr) != 2:
        yield
        return
    python_stderr = sys.stderr
    python_stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    replacement = io.TextIOWrapper(
        io.FileIO(os.dup(saved), "w"),
        encoding=python_stderr.encoding or "utf-8",
        errors="backslashreplace",
        line_buffering=True,
        write_through=True,
    )
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = replacement
    try:
        yield
    finally:
        try:
            replacement.flush()
        finally:
            sys.stderr = python_stderr
            os.dup2(saved, 2)
            os.close(saved)
            replacement.close()
