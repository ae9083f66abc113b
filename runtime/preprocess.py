"""Pre- and post-processing of batches: images → network input, network maps → full resolution.

A ``Preprocessor`` does the contract's arithmetic (``fakelocator.contract``) for a whole batch. Two
implementations:

- ``NumpyPreprocessor``: the fallback, the contract's own functions applied image by image (its
  resize reads only the 2 × 2 source pixels each output pixel needs, so a 24-megapixel photo costs
  about as much as a 224² one).
- ``NativePreprocessor``: wraps ``fakelocator.runtime.native`` (C++/CUDA kernels) when that
  library is built; ``select_preprocessor("auto")`` prefers it.

The map goes back to full resolution with the contract's own ``to_full_resolution``.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from fakelocator.contract import Preprocessing, to_full_resolution, to_network_input
from fakelocator.errors import FakeLocatorError


class Preprocessor(Protocol):
    """The batch pre/post-processing interface the pipeline calls."""

    name: str

    def preprocess(self, images: Sequence[np.ndarray], color_order: str, contract: Preprocessing, out: np.ndarray) -> np.ndarray:
        """uint8 (H_i, W_i, 3) images in ``color_order`` → ``out`` (len(images), 3, h, w) float32, filled and returned."""

    def upsample(self, map_hw: np.ndarray, height: int, width: int, out: np.ndarray | None = None) -> np.ndarray:
        """(h, w) float32 map → (height, width) float32 in [0, 1] by the contract's bilinear rule."""


class NumpyPreprocessor:
    name = "numpy"

    def preprocess(self, images, color_order, contract, out):
        for i, image in enumerate(images):
            out[i] = to_network_input(image, contract, color_order)
        return out

    def upsample(self, map_hw, height, width, out=None):
        full = to_full_resolution(np.asarray(map_hw, np.float32), height, width)
        if out is None:
            return full
        out[...] = full
        return out


class NativePreprocessor:
    """Adapter over the native library's object (``fakelocator.runtime.native.load()``)."""

    def __init__(self, lib):
        self._lib = lib
        self.name = f"native:{getattr(lib, 'name', type(lib).__name__)}"

    def preprocess(self, images, color_order, contract, out):
        images = [np.ascontiguousarray(im) for im in images]
        self._lib.preprocess(images, color_order, contract, out)
        return out

    def upsample(self, map_hw, height, width, out=None):
        return self._lib.upsample(np.ascontiguousarray(map_hw, np.float32), height, width, out=out)

    def overlay(self, image_bgr, map_full, alpha, lut):
        return self._lib.overlay(np.ascontiguousarray(image_bgr), np.ascontiguousarray(map_full, np.float32), alpha, lut)


def load_native():
    """The native library's object, or None when it is not built or not importable."""
    try:
        from fakelocator.runtime import native
    except ImportError:
        return None
    try:
        return native.load()
    except Exception:  # noqa: BLE001 - a broken native build must not stop the pure-Python path
        return None


def select_preprocessor(kind: str = "auto") -> Preprocessor:
    """``"auto"`` (native when built, else numpy), ``"numpy"`` or ``"native"``."""
    if kind == "numpy":
        return NumpyPreprocessor()
    if kind not in ("auto", "native"):
        raise FakeLocatorError(f"unknown preprocessor {kind!r}; choose auto, numpy or native")
    lib = load_native()
    if lib is not None:
        return NativePreprocessor(lib)
    if kind == "native":
        raise FakeLocatorError("the native preprocessing library is not built (see docs/native.md)")
    return NumpyPreprocessor()
