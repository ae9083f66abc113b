"""The reference heat-map overlay: a full-resolution map blended over its image.

Exactly (the native kernels implement the same formula and are tested against this one):

    level = uint8(floor(clip(map, 0, 1) * 255 + 0.5))
    heat  = JET[level]                                 # (H, W, 3) BGR, OpenCV's COLORMAP_JET
    out   = uint8(floor(alpha * heat + (1 - alpha) * image + 0.5))

computed in float32, with ``alpha`` = 0.5 by default.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from fakelocator.errors import FakeLocatorError

DEFAULT_ALPHA = 0.5


@lru_cache(maxsize=1)
def jet_lut() -> np.ndarray:
    """(256, 3) uint8 BGR: OpenCV's COLORMAP_JET applied to 0..255."""
    import cv2

    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, :]
    lut = np.ascontiguousarray(lut)
    lut.flags.writeable = False
    return lut


def map_levels(map_full: np.ndarray) -> np.ndarray:
    """float map → uint8 levels ``floor(clip(map, 0, 1) * 255 + 0.5)``."""
    return np.floor(np.clip(map_full, 0.0, 1.0).astype(np.float32) * np.float32(255) + np.float32(0.5)).astype(np.uint8)


def overlay(image_bgr: np.ndarray, map_full: np.ndarray, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """uint8 (H, W, 3) BGR image + (H, W) map in [0, 1] → uint8 (H, W, 3) BGR overlay."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise FakeLocatorError(f"overlay needs a uint8 (H, W, 3) image, got {image_bgr.dtype} {image_bgr.shape}")
    if map_full.shape != image_bgr.shape[:2]:
        raise FakeLocatorError(f"overlay needs a map of the image's size {image_bgr.shape[:2]}, got {map_full.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise FakeLocatorError(f"overlay alpha must be in [0, 1], got {alpha}")
    heat = jet_lut()[map_levels(map_full)].astype(np.float32)  # (H, W, 3)
    a = np.float32(alpha)
    blended = a * heat + (np.float32(1.0) - a) * image_bgr.astype(np.float32) + np.float32(0.5)
    return np.floor(blended).astype(np.uint8)
