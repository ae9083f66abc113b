"""Ground-truth fakeness maps (Sec. IV-E1, Eq. 7).

``Gray`` is ITU-R BT.601 luma, the weights OpenCV's ``COLOR_RGB2GRAY`` uses, applied in floating point
(no rounding): for a partial manipulation ``M = (0.299·|ΔR| + 0.587·|ΔG| + 0.114·|ΔB|) / 255``,
computed at the images' full resolution, elementwise, so a pixel's value does not depend on how the
arrays are laid out in memory. Entire synthesis gives all ones, a real image all zeros.
"""

from __future__ import annotations

import numpy as np

from fakelocator.errors import FakeLocatorError

#: BT.601 luma weights in R, G, B order.
LUMA_RGB = (0.299, 0.587, 0.114)


def partial_manipulation_map(real: np.ndarray, fake: np.ndarray, color_order: str = "RGB") -> np.ndarray:
    """Eq. 7 for two uint8 (H, W, 3) images of the same size → float32 (H, W) in [0, 1]."""
    if real.shape != fake.shape:
        raise FakeLocatorError(f"real and fake differ in size: {real.shape} vs {fake.shape}")
    if real.ndim != 3 or real.shape[2] != 3:
        raise FakeLocatorError(f"expected (H, W, 3) images, got {real.shape}")
    if color_order not in ("RGB", "BGR"):
        raise FakeLocatorError(f"color_order must be RGB or BGR, got {color_order!r}")
    wr, wg, wb = (np.float32(w) for w in LUMA_RGB)
    r, b = (0, 2) if color_order == "RGB" else (2, 0)

    def channel(c: int) -> np.ndarray:
        return np.abs(real[:, :, c].astype(np.float32) - fake[:, :, c].astype(np.float32))

    # Elementwise, in a fixed order (R, then G, then B): every pixel's value is the same whatever
    # the arrays' layout (a matrix product may use FMA/SIMD paths that round differently for a
    # contiguous array and a shuffled view of it).
    total = channel(r) * wr
    total += channel(1) * wg
    total += channel(b) * wb
    return total / np.float32(255.0)


def entire_synthesis_map(height: int, width: int) -> np.ndarray:
    return np.ones((height, width), np.float32)


def real_map(height: int, width: int) -> np.ndarray:
    return np.zeros((height, width), np.float32)
