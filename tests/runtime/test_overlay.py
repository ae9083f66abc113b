"""The reference overlay formula: transparent where the map is near 0, a perceptual colour map, a colour bar."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.overlay import (
    COLORMAPS,
    DEFAULT_ALPHA,
    DEFAULT_RAMP,
    colorbar,
    colormap_lut,
    jet_lut,
    map_levels,
    opacity_table,
    overlay,
    with_colorbar,
)


def test_lut_is_opencv_jet():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(jet_lut()[levels], cv2.applyColorMap(levels, cv2.COLORMAP_JET))


def test_default_colour_map_is_inferno_dark_to_light():
    lut = colormap_lut()
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(lut[levels], cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO))
    luma = lut.astype(np.float64) @ np.array([0.114, 0.587, 0.299])  # BGR → BT.601 luma
    assert luma[0] < 5 and luma[-1] > 230
    assert (np.diff(luma) > -1.0).all()  # lightness rises with the value: readable in grey


def test_every_named_colour_map_loads_and_unknown_names_are_refused():
    for name in COLORMAPS:
        assert colormap_lut(name).shape == (256, 3)
    with pytest.raises(FakeLocatorError, match="unknown colour map 'rainbow'"):
        colormap_lut("rainbow")


def test_levels_round_half_up_clip_and_nan_is_zero():
    m = np.array([[-0.5, 0.0, 0.5 / 255, 0.49 / 255, 1.0, 7.0, np.nan]], np.float32)
    assert map_levels(m).tolist() == [[0, 0, 1, 0, 255, 255, 0]]


def test_opacity_ramp_values():
    table = opacity_table(0.6, (0.1, 0.6))
    assert table.dtype == np.float32 and table.shape == (256,)
    levels = np.arange(256) / 255
    assert (table[levels <= 0.1] == 0).all()
    assert np.allclose(table[levels >= 0.6], 0.6)
    mid = int(round(0.35 * 255))  # halfway up the ramp
    assert table[mid] == pytest.approx(0.6 * (mid / 255 - 0.1) / 0.5, rel=1e-6)
    assert (np.diff(table) >= 0).all()


@pytest.mark.parametrize("alpha, ramp, reason", [
    (1.5, (0.1, 0.6), r"alpha must be in \[0, 1\]"),
    (0.5, (0.6, 0.1), "lo < hi"),
    (0.5, (0.2, 0.2), "lo < hi"),
    (0.5, (-0.1, 0.5), "0 <= lo"),
    (0.5, "x", r"ramp must be \(lo, hi\)"),
])
def test_bad_ramps_are_refused(alpha, ramp, reason):
    with pytest.raises(FakeLocatorError, match=reason):
        opacity_table(alpha, ramp)


def test_a_zero_map_leaves_the_image_unchanged(rng):
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert np.array_equal(overlay(image, np.zeros((20, 30), np.float32)), image)
    # Below the ramp's start the image is untouched too: a real image's low map is invisible.
    below = np.full((20, 30), DEFAULT_RAMP[0] - 1.0 / 255, np.float32)
    assert np.array_equal(overlay(image, below), image)


def test_a_one_map_is_fully_coloured_at_alpha_max(rng):
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = overlay(image, np.ones((20, 30), np.float32), 0.6)
    top = colormap_lut()[255].astype(np.float64)
    exact = 0.6 * top + 0.4 * image
    assert np.abs(out - np.floor(exact + 0.5)).max() <= 1  # float32 rounding only flips a .5 tie
    assert np.array_equal(overlay(image, np.ones((20, 30), np.float32), 1.0), np.broadcast_to(colormap_lut()[255], image.shape))


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.6, 1.0])
def test_blend_formula(alpha, rng):
    image = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    m = rng.random((9, 11), dtype=np.float32)
    lo, hi = DEFAULT_RAMP
    level = np.floor(m * np.float32(255) + np.float32(0.5)).astype(np.uint8)
    a = (alpha * np.clip((level / 255.0 - lo) / (hi - lo), 0, 1)).astype(np.float32)[..., None]
    heat = colormap_lut()[level].astype(np.float32)
    want = np.floor(a * heat + (np.float32(1) - a) * image.astype(np.float32) + np.float32(0.5))
    got = overlay(image, m, alpha)
    assert got.dtype == np.uint8
    assert np.array_equal(got, want.astype(np.uint8))
    exact = np.floor(a.astype(np.float64) * heat + (1 - a.astype(np.float64)) * image + 0.5)
    assert np.abs(got - exact).max() <= 1


def test_zero_alpha_is_the_image(rng):
    image = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    assert np.array_equal(overlay(image, rng.random((4, 4), dtype=np.float32), 0.0), image)


def test_map_must_match_the_image():
    with pytest.raises(FakeLocatorError, match="map of the image's size"):
        overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4), np.float32))


def test_colour_bar_runs_from_one_at_the_top_to_transparent_at_the_bottom():
    bar = colorbar(200)
    assert bar.dtype == np.uint8 and bar.shape[0] == 200 and bar.shape[2] == 3
    column = bar[8:192, 2 + 7]  # the bar's middle column, inside the frame
    top = map_levels(np.float32(1 - 0.5 / 184))  # the top row's value (the bar is 184 rows)
    assert np.array_equal(column[0], colormap_lut()[top])  # full colour near 1
    assert set(np.unique(column[-1])) <= {90, 150}  # the checkerboard shows through at 0
    labels = bar[:, 2 + 14 + 5:]
    assert (labels < 128).any()  # tick labels are drawn


def test_with_colorbar_appends_on_the_right(rng):
    image = rng.integers(0, 256, (120, 80, 3), dtype=np.uint8)
    out = with_colorbar(image)
    assert out.shape[0] == 120 and out.shape[1] > 80
    assert np.array_equal(out[:, :80], image)
    with pytest.raises(FakeLocatorError, match="at least 24 pixels"):
        with_colorbar(image[:10])


def test_defaults():
    assert DEFAULT_ALPHA == 0.6 and DEFAULT_RAMP == (0.1, 0.6)
