"""The reference heat-map overlay: a full-resolution map drawn over its image, transparent where the
map is near 0, and the colour bar that explains it.

Exactly (the native kernels implement the same formula and are tested against this one):

    level   = uint8(floor(clip(map, 0, 1) * 255 + 0.5))       # NaN → 0
    heat    = LUT[level]                                       # (H, W, 3) BGR colour map
    opacity = OPACITY[level]                                   # float32, see opacity_table
    out     = uint8(floor(opacity * heat + (1 - opacity) * image + 0.5))

computed in float32. The opacity grows with the map value:

    OPACITY[l] = alpha · clip((l / 255 − lo) / (hi − lo), 0, 1)

with ``alpha`` the maximum opacity (0.6), ``lo`` = 0.1 (the paper's binarization level: a pixel
below it counts as not manipulated) and ``hi`` = 0.6. Where the map is below ``lo`` the overlay is
the image itself, bit for bit, so a real image's overlay is the photo and not a tinted copy; from
``hi`` up the colour is at full ``alpha``. The colour map is perceptual (``inferno`` by default:
lightness rises monotonically from black to pale yellow, readable in grey and by colour-blind
readers), taken from OpenCV's built-in tables (equal to matplotlib's; the runtime never imports
matplotlib).

The opacity is a function of the 8-bit level, so it travels to the native library as a 256-entry
table beside the colour table, and both paths index the same numbers.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.levels import map_levels

#: Maximum opacity of the heat map (reached where the map is ≥ ``DEFAULT_RAMP[1]``).
DEFAULT_ALPHA = 0.6
#: (lo, hi): the map values where the heat map starts to show and where it reaches ``alpha``.
DEFAULT_RAMP = (0.1, 0.6)
DEFAULT_COLORMAP = "inferno"
#: The colour maps ``colormap_lut`` knows: OpenCV's tables. ``jet`` is the old default (not perceptual).
COLORMAPS = ("inferno", "magma", "viridis", "turbo", "jet")


@lru_cache(maxsize=None)
def colormap_lut(name: str = DEFAULT_COLORMAP) -> np.ndarray:
    """(256, 3) uint8 BGR, read-only: OpenCV's colour map ``name`` applied to 0..255."""
    import cv2

    if name not in COLORMAPS:
        raise FakeLocatorError(f"unknown colour map {name!r}; choose one of {', '.join(COLORMAPS)}")
    code = getattr(cv2, f"COLORMAP_{name.upper()}")
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], code)[:, 0, :]
    lut = np.ascontiguousarray(lut)
    lut.flags.writeable = False
    return lut


def jet_lut() -> np.ndarray:
    """(256, 3) uint8 BGR: OpenCV's COLORMAP_JET applied to 0..255."""
    return colormap_lut("jet")


def _check_ramp(alpha: float, ramp: tuple[float, float]) -> tuple[float, float, float]:
    try:
        lo, hi = (float(v) for v in ramp)
    except (TypeError, ValueError):
        raise FakeLocatorError(f"overlay ramp must be (lo, hi), got {ramp!r}") from None
    if not 0.0 <= float(alpha) <= 1.0:
        raise FakeLocatorError(f"overlay alpha must be in [0, 1], got {alpha}")
    if not 0.0 <= lo < hi <= 1.0:
        raise FakeLocatorError(f"overlay ramp must satisfy 0 <= lo < hi <= 1, got lo={lo}, hi={hi}")
    return float(alpha), lo, hi


@lru_cache(maxsize=64)
def _opacity_table(alpha: float, lo: float, hi: float) -> np.ndarray:
    levels = np.arange(256, dtype=np.float64) / 255.0
    table = (alpha * np.clip((levels - lo) / (hi - lo), 0.0, 1.0)).astype(np.float32)
    table.flags.writeable = False
    return table


def opacity_table(alpha: float = DEFAULT_ALPHA, ramp: tuple[float, float] = DEFAULT_RAMP) -> np.ndarray:
    """(256,) float32, read-only: the heat map's opacity at each map level,
    ``alpha · clip((level / 255 − lo) / (hi − lo), 0, 1)`` (computed in float64, rounded once)."""
    return _opacity_table(*_check_ramp(alpha, ramp))


def blend_levels(image_bgr: np.ndarray, levels: np.ndarray, lut: np.ndarray, opacity: np.ndarray) -> np.ndarray:
    """The overlay formula on uint8 levels: ``floor(o · lut[l] + (1 − o) · image + 0.5)`` in float32,
    ``o = opacity[l]``. Shared by ``overlay`` and the colour bar."""
    heat = lut[levels].astype(np.float32)  # (H, W, 3)
    o = opacity[levels][..., None]  # (H, W, 1) float32
    blended = o * heat + (np.float32(1.0) - o) * image_bgr.astype(np.float32) + np.float32(0.5)
    return np.floor(blended).astype(np.uint8)


def overlay(
    image_bgr: np.ndarray,
    map_full: np.ndarray,
    alpha: float = DEFAULT_ALPHA,
    *,
    ramp: tuple[float, float] = DEFAULT_RAMP,
    colormap: str = DEFAULT_COLORMAP,
) -> np.ndarray:
    """uint8 (H, W, 3) BGR image + (H, W) map in [0, 1] (or its uint8 levels, ``levels.map_levels``)
    → uint8 (H, W, 3) BGR overlay.

    ``alpha`` is the maximum opacity of the heat map, ``ramp`` = (lo, hi) the map values between
    which its opacity rises from 0 to ``alpha`` (module docstring).
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise FakeLocatorError(f"overlay needs a uint8 (H, W, 3) image, got {image_bgr.dtype} {image_bgr.shape}")
    if map_full.shape != image_bgr.shape[:2]:
        raise FakeLocatorError(f"overlay needs a map of the image's size {image_bgr.shape[:2]}, got {map_full.shape}")
    table = opacity_table(alpha, ramp)
    levels = map_full if map_full.dtype == np.uint8 else map_levels(map_full)
    return blend_levels(image_bgr, levels, colormap_lut(colormap), table)


# ------------------------------------------------------------------------------------- colour bar

COLORBAR_TICKS = (0.0, 0.5, 1.0)


def colorbar(
    height: int,
    *,
    ramp: tuple[float, float] = DEFAULT_RAMP,
    colormap: str = DEFAULT_COLORMAP,
    bar_width: int = 14,
    ticks: tuple[float, ...] = COLORBAR_TICKS,
    background: int = 255,
) -> np.ndarray:
    """A vertical colour-bar legend, uint8 (height, W, 3) BGR: map value 1 at the top, 0 at the bottom.

    The bar is the overlay formula with full opacity at ``hi`` applied to a grey checkerboard: the
    colours show at full strength from ``hi`` up (the overlay draws them at its ``alpha``), fade
    into the checkerboard down the ramp, and below ``lo`` the checkerboard shows unchanged (the
    overlay is transparent there). Ticks are labelled (``0``, ``0.5``, ``1``).
    """
    import cv2

    if height < 24:
        raise FakeLocatorError(f"a colour bar needs a height of at least 24 pixels, got {height}")
    pad = 8  # room above and below for the end labels
    bar_h = height - 2 * pad
    values = 1.0 - (np.arange(bar_h, dtype=np.float64) + 0.5) / bar_h  # top row = 1
    levels = np.repeat(map_levels(values.astype(np.float32))[:, None], bar_width, axis=1)
    yy, xx = np.mgrid[0:bar_h, 0:bar_width]
    checker = np.where(((yy // 4) + (xx // 4)) % 2 == 0, 150, 90).astype(np.uint8)  # mid greys: pale colours show
    bar = blend_levels(np.repeat(checker[:, :, None], 3, axis=2), levels, colormap_lut(colormap), opacity_table(1.0, ramp))
    label_w = 34
    out = np.full((height, 2 + bar_width + 4 + label_w, 3), background, np.uint8)
    out[pad:pad + bar_h, 2:2 + bar_width] = bar
    cv2.rectangle(out, (1, pad - 1), (2 + bar_width, pad + bar_h), (0, 0, 0), 1)
    for t in ticks:
        y = int(round(pad + (1.0 - t) * (bar_h - 1)))
        cv2.line(out, (2 + bar_width, y), (2 + bar_width + 3, y), (0, 0, 0), 1)
        text = f"{t:g}"
        cv2.putText(out, text, (2 + bar_width + 5, min(height - 2, y + 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.36,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return out


def with_colorbar(overlay_bgr: np.ndarray, **kwargs) -> np.ndarray:
    """``overlay_bgr`` with a colour bar (``colorbar``, same keyword arguments) appended on its right."""
    if overlay_bgr.ndim != 3 or overlay_bgr.shape[2] != 3 or overlay_bgr.dtype != np.uint8:
        raise FakeLocatorError(f"with_colorbar needs a uint8 (H, W, 3) image, got {overlay_bgr.dtype} {overlay_bgr.shape}")
    bar = colorbar(overlay_bgr.shape[0], **kwargs)
    return np.concatenate([overlay_bgr, bar], axis=1)
