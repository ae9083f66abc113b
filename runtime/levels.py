"""The one rule from a map in [0, 1] to integer levels: what an 8-bit PNG map stores.

    level = floor(clip(map, 0, 1) * (2**depth - 1) + 0.5)     in float32; NaN -> 0

Rounding is half up (0.5/255 -> 1, 2.5/255 -> 3), not numpy's ``round`` (half to even). trt-locate's
PNG maps (``outputs.encode_map``), its overlays (``overlay``), Triton's uint8 maps
(``triton_models.encode_maps``), the evaluation's figures and the uint8 stitch/upsample of the
pipeline (``Preprocessor.stitch_u8``/``upsample_u8``; the native kernels compute the same formula in
C, native/src/common.h) all use it, so a map served by Triton is byte for byte the PNG trt-locate writes.
"""

from __future__ import annotations

import numpy as np

from fakelocator.errors import FakeLocatorError

DEPTHS = (8, 16)


def map_levels(map_full: np.ndarray, out: np.ndarray | None = None, *, depth: int = 8) -> np.ndarray:
    """(…) float map in [0, 1] → its uint8 (depth 8) or uint16 (depth 16) levels by the module's rule.

    ``out``: an array of that dtype and the map's shape to write into (None: a new one). Returns it.
    """
    if depth not in DEPTHS:
        raise FakeLocatorError(f"map depth must be 8 or 16, got {depth}")
    m = np.nan_to_num(np.asarray(map_full, dtype=np.float32), nan=0.0)
    x = np.floor(np.clip(m, np.float32(0.0), np.float32(1.0)) * np.float32(2**depth - 1) + np.float32(0.5))
    if out is None:
        return x.astype(np.uint8 if depth == 8 else np.uint16)
    out[...] = x
    return out
