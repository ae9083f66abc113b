"""The reference overlay formula."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.overlay import jet_lut, map_levels, overlay


def test_lut_is_opencv_jet():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(jet_lut()[levels], cv2.applyColorMap(levels, cv2.COLORMAP_JET))


def test_levels_round_half_up_and_clip():
    m = np.array([[-0.5, 0.0, 0.5 / 255, 0.49 / 255, 1.0, 7.0]], np.float32)
    assert map_levels(m).tolist() == [[0, 0, 1, 0, 255, 255]]


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_blend_formula(alpha, rng):
    image = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    m = rng.random((9, 11), dtype=np.float32)
    a = np.float32(alpha)
    heat = jet_lut()[np.floor(m * np.float32(255) + np.float32(0.5)).astype(np.uint8)].astype(np.float32)
    want = np.floor(a * heat + (np.float32(1) - a) * image.astype(np.float32) + np.float32(0.5))
    got = overlay(image, m, alpha)
    assert got.dtype == np.uint8
    assert np.array_equal(got, want.astype(np.uint8))
    exact = np.floor(alpha * heat.astype(np.float64) + (1 - alpha) * image + 0.5)
    assert np.abs(got - exact).max() <= 1  # float32 rounding can only flip a .5 tie


def test_endpoints_are_exact(rng):
    image = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    m = rng.random((4, 4), dtype=np.float32)
    assert np.array_equal(overlay(image, m, 0.0), image)
    assert np.array_equal(overlay(image, m, 1.0), jet_lut()[map_levels(m)])


def test_map_must_match_the_image():
    with pytest.raises(FakeLocatorError, match="map of the image's size"):
        overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4), np.float32))
