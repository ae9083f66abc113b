"""Pre- and post-processing of batches: images → network input, network maps → full resolution.

A ``Preprocessor`` does the contract's arithmetic (``fakelocator.contract``) for a whole batch. Two
implementations:

- ``NumpyPreprocessor``: the fallback, the contract's own functions applied image by image (its
  resize reads only the 2 × 2 source pixels each output pixel needs, so a 24-megapixel photo costs
  about as much as a 224² one).
- ``NativePreprocessor``: wraps ``fakelocator.runtime.native`` (C++/CUDA kernels) when that
  library is built; ``select_preprocessor("auto")`` prefers it.

The map goes back to full resolution with the contract's own ``to_full_resolution``.

In ``native`` analysis (``fakelocator.tiling``) ``tiles`` replaces ``preprocess`` and ``stitch``
replaces ``upsample``. A preprocessor without them (an older native build) is run with the numpy
reference versions below (``tiles_of`` / ``stitch_of`` pick one or the other).
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from fakelocator.contract import Preprocessing, to_full_resolution, to_network_input
from fakelocator.errors import FakeLocatorError
from fakelocator.tiling import TileGrid, extract_tiles, normalize_tiles
from fakelocator.tiling import stitch as stitch_tiles


class Preprocessor(Protocol):
    """The batch pre/post-processing interface the pipeline calls."""

    name: str

    def preprocess(self, images: Sequence[np.ndarray], color_order: str, contract: Preprocessing, out: np.ndarray) -> np.ndarray:
        """uint8 (H_i, W_i, 3) images in ``color_order`` → ``out`` (len(images), 3, h, w) float32, filled and returned."""

    def upsample(self, map_hw: np.ndarray, height: int, width: int, out: np.ndarray | None = None) -> np.ndarray:
        """(h, w) float32 map → (height, width) float32 in [0, 1] by the contract's bilinear rule."""

    def tiles(self, image: np.ndarray, grid: TileGrid, color_order: str, contract: Preprocessing, out: np.ndarray) -> np.ndarray:
        """``native``: uint8 (H, W, 3) ``image`` in ``color_order`` → ``out`` (len(grid), 3, th, tw) float32.

        ``grid`` may be part of the image's grid (some of its rows ``ys`` and columns ``xs``, with
        the image's own ``height`` and ``width``): tile k is the one at ``(ys[k // len(xs)],
        xs[k % len(xs)])``. The pipeline cuts an image's tiles that way where they span batches.
        """

    def stitch(self, maps: np.ndarray, grid: TileGrid, window: str, out: np.ndarray | None = None) -> np.ndarray:
        """``native``: (len(grid), th, tw) tile maps of an image's whole grid → (H, W) float32 in [0, 1]."""


def numpy_tiles(image, grid, color_order, contract, out):
    """The reference ``Preprocessor.tiles`` (``fakelocator.tiling``: mirrored padding, the contract's normalization)."""
    if color_order != contract.color_order:
        image = image[:, :, ::-1]
    return normalize_tiles(extract_tiles(image, grid), contract.mean, contract.std, out=out)


def numpy_stitch(maps, grid, window, out=None):
    """The reference ``Preprocessor.stitch``: the tiling rule's blend, clipped to [0, 1] like an upsampled map."""
    full = stitch_tiles(np.asarray(maps, np.float32), grid, window, out=out)
    return np.clip(full, 0.0, 1.0, out=full)


def tiles_of(preprocessor):
    """``preprocessor.tiles``, or the numpy reference when it has none."""
    return getattr(preprocessor, "tiles", None) or numpy_tiles


def stitch_of(preprocessor):
    """``preprocessor.stitch``, or the numpy reference when it has none."""
    return getattr(preprocessor, "stitch", None) or numpy_stitch


class NumpyPreprocessor:
    name = "numpy"

    def tiles(self, image, grid, color_order, contract, out):
        return numpy_tiles(image, grid, color_order, contract, out)

    def stitch(self, maps, grid, window, out=None):
        return numpy_stitch(maps, grid, window, out)

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
