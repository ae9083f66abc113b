"""Writing files so that a reader never sees half of one, with the permissions a plain ``open`` gives.

Everything the tools write (maps, reports, checkpoints, ONNX files, caches) goes through
``atomic_path``: a temporary file beside the target, then a rename. ``tempfile.mkstemp`` creates
that file readable by its owner only; it is given the mode ``open`` would have given (0666 less the
umask) before the rename, so a map or a model written by one user can be served by another (a web
server, a Triton container).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no thread-safe way to read it elsewhere; set it straight back
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path, *, prefix: str | None = None, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path``, else it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix if prefix is not None else f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | Path, data: bytes | memoryview, *, prefix: str | None = None) -> None:
    """Write ``data`` to ``path`` through ``atomic_path``."""
    with atomic_path(path, prefix=prefix) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def atomic_write_text(path: str | Path, text: str, *, prefix: str | None = None) -> None:
    """Write ``text`` as UTF-8 to ``path`` through ``atomic_path``."""
    atomic_write_bytes(path, text.encode("utf-8"), prefix=prefix)
