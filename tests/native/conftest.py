"""The native library under test: ``FAKELOCATOR_NATIVE_LIB`` when set, else ``<repo>/build``, built
from the current sources first (incremental: about a second when nothing changed; without cmake,
an existing ``build/`` library is used as it is).

Without cmake or a C++ compiler the tests skip with the reason; CI and the dev machine have both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
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


@pytest.fixture(scope="session")
def native_path() -> Path:
    override = os.environ.get(native.LIBRARY_ENV, "").strip()
    if override and override.lower() != "off":
        return Path(override)
    return build_library(REPO / "build")


@pytest.fixture(scope="session")
def lib(native_path) -> native.NativeLibrary:
    return native.NativeLibrary(native_path)


@pytest.fixture(scope="session")
def jet_lut() -> np.ndarray:
    """OpenCV's COLORMAP_JET as a (256, 3) uint8 BGR table."""
    import cv2

    return cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, :]


@pytest.fixture(scope="session")
def cpu_only_build(tmp_path_factory) -> Path:
    """A second build, as on a machine without nvcc, plus the CUDA-kernel emulation library
    (native/src/emulate.cpp). About 10 s on 2 cores; the directory holding both is returned."""
    build_dir = tmp_path_factory.mktemp("cpu-only-build")
    build_library(build_dir, "-DFAKELOCATOR_CUDA=OFF", "-DFAKELOCATOR_EMULATED_CUDA=ON")
    return build_dir
