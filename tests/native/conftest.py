"""The native library under test: ``FAKELOCATOR_NATIVE_LIB`` when set, else ``<repo>/build``, built
from the current sources first (incremental: about a second when nothing changed; without cmake,
an existing ``build/`` library is used as it is).

Without cmake or a C++ compiler the tests skip with the reason; CI and the dev machine have both.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fakelocator.runtime import native
from helpers.native_build import REPO, build_library


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
