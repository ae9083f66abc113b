"""Which commit of this project produced a file or a measurement (provenance of models and benchmarks)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_state(where: Path | None = None) -> dict | None:
    """``{"commit": sha, "modified": tracked files changed}`` of the checkout at ``where`` (default:
    this package's), or None outside a git checkout or without git."""
    if where is None:
        import fakelocator

        where = Path(fakelocator.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "modified": bool(status.stdout.strip())}
