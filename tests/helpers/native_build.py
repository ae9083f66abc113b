"""Building the native library under test (``native/`` with cmake), for the native and GPU-path tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fakelocator.runtime import native

REPO = Path(__file__).resolve().parents[2]


def build_library(build_dir: Path, *options: str) -> Path:
    """Configures (once) and builds native/ into ``build_dir``; returns the library's path.

    Skips the calling test, with the reason, when cmake or a compiler is missing or the build fails.
    """
    path = build_dir / native.library_filename()
    if shutil.which("cmake") is None:
        if path.is_file() and not options:
            return path  # built elsewhere (e.g. carried to a GPU machine without cmake)
        pytest.skip("cmake is not installed: cannot build the native library (see docs/native.md)")
    steps = []
    if not (build_dir / "CMakeCache.txt").exists() or options:
        steps.append(["cmake", "-S", str(REPO), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release", *options])
    steps.append(["cmake", "--build", str(build_dir), "-j", str(os.cpu_count() or 1)])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
            pytest.skip(f"the native library did not build ({' '.join(step)}):\n{tail}")
    if not path.is_file():
        pytest.skip(f"the build produced no {path}")
    return path


def forget_loaded_library() -> None:
    """Make ``native.load()`` look for the library again (it caches its first result)."""
    with native._load_lock:
        native._loaded, native._unavailable = None, None


def cuda_device_count(lib: native.NativeLibrary) -> int:
    """GPUs the library's CUDA runtime sees (``fl_cuda_device_count``); FakeLocatorError when there is no driver."""
    import ctypes

    count = ctypes.c_int32(0)
    lib._call("cuda_device_count", lib._lib.fl_cuda_device_count(ctypes.byref(count)))
    return count.value
