"""Pre- and post-processing of batches: images → network input, network maps → full resolution.

A ``Preprocessor`` does the contract's arithmetic (``fakelocator.contract``) for a whole batch. Two
implementations:

- ``NumpyPreprocessor``: the default. Its resize samples only the 2 × 2 source pixels each output
  pixel needs (a gather on the uint8 image) instead of converting the whole image to float32 first,
  so a 24-megapixel photo costs as much as a 224 × 224 one. Its arithmetic is OpenCV's
  ``INTER_LINEAR`` float path step by step (float32 coordinates ``(d + 0.5) * in / out - 0.5``,
  edge clamping, horizontal pass then vertical), and it equals ``contract.to_network_input``
  bit for bit when OpenCV's IPP acceleration is off. With IPP on (the default of the
  opencv-python wheels) OpenCV's own result moves by up to ~0.06 on the 0..255 scale for
  non-integer scale factors; ``tests/runtime/test_preprocess.py`` checks both.
- ``NativePreprocessor``: wraps ``fakelocator.runtime.native`` (C++/CUDA kernels) when that
  library is built; ``select_preprocessor("auto")`` prefers it.

The map goes back to full resolution with the contract's own ``to_full_resolution``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol, Sequence

import numpy as np

from fakelocator.contract import COLOR_ORDERS, Preprocessing, to_full_resolution
from fakelocator.errors import FakeLocatorError


class Preprocessor(Protocol):
    """The batch pre/post-processing interface the pipeline calls."""

    name: str

    def preprocess(self, images: Sequence[np.ndarray], color_order: str, contract: Preprocessing, out: np.ndarray) -> np.ndarray:
        """uint8 (H_i, W_i, 3) images in ``color_order`` → ``out`` (len(images), 3, h, w) float32, filled and returned."""

    def upsample(self, map_hw: np.ndarray, height: int, width: int, out: np.ndarray | None = None) -> np.ndarray:
        """(h, w) float32 map → (height, width) float32 in [0, 1] by the contract's bilinear rule."""


@lru_cache(maxsize=64)
def _axis(n_in: int, n_out: int, clamp_weights: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (i0, i1) and weights (w0, w1) along one axis, as OpenCV's INTER_LINEAR computes them.

    Both axes clamp the indices to the edge. OpenCV also zeroes the fractional weight of clamped
    columns (``clamp_weights``) but keeps it for clamped rows, where it blends the edge row with
    itself; that changes the result by an ulp or two, so it is reproduced here too.
    """
    d = np.arange(n_out, dtype=np.float64)
    f = ((d + 0.5) * (n_in / n_out) - 0.5).astype(np.float32)
    floor = np.floor(f)
    w1 = (f - floor).astype(np.float32)
    floor = floor.astype(np.intp)
    if clamp_weights:
        w1[(floor < 0) | (floor >= n_in - 1)] = 0.0
    i0 = np.clip(floor, 0, n_in - 1)
    i1 = np.clip(floor + 1, 0, n_in - 1)
    w0 = (np.float32(1.0) - w1).astype(np.float32)
    for a in (i0, i1, w0, w1):
        a.flags.writeable = False
    return i0, i1, w0, w1


def resize_gather(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (H, W, C) → float32 (height, width, C): the contract's bilinear resize, reading only the pixels it needs."""
    y0, y1, b0, b1 = _axis(image.shape[0], height, False)
    x0, x1, a0, a1 = _axis(image.shape[1], width, True)
    a0, a1 = a0[None, :, None], a1[None, :, None]
    top, bottom = image[y0], image[y1]  # (height, W, C) uint8
    h0 = top[:, x0] * a0 + top[:, x1] * a1  # (height, width, C) float32
    h1 = bottom[:, x0] * a0 + bottom[:, x1] * a1
    return h0 * b0[:, None, None] + h1 * b1[:, None, None]


class NumpyPreprocessor:
    name = "numpy"

    def preprocess(self, images, color_order, contract, out):
        if color_order not in COLOR_ORDERS:
            raise FakeLocatorError(f"color_order must be one of {COLOR_ORDERS}, got {color_order!r}")
        mean = np.asarray(contract.mean, np.float32) * 255.0
        inv_std = 1.0 / (np.asarray(contract.std, np.float32) * 255.0)
        channels = [2, 1, 0] if color_order != contract.color_order else [0, 1, 2]
        for i, image in enumerate(images):
            x = resize_gather(image, contract.height, contract.width)  # (h, w, 3) on the 0..255 scale
            x = (x[:, :, channels] - mean) * inv_std
            out[i] = x.transpose(2, 0, 1)
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
