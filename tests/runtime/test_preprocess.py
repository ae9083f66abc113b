"""The runtime's batch preprocessing against values computed by hand from the contract's rule
(fakelocator/contract.py: bilinear with half-pixel centres, clamped at the edges, no antialiasing;
then (x / 255 − mean) / std in the contract's colour order)."""

from __future__ import annotations

import numpy as np
import pytest

from fakelocator.contract import Preprocessing
from fakelocator.runtime.preprocess import NumpyPreprocessor, select_preprocessor

# 2 → 8 pixels: src = (dst + 0.5) · 2/8 − 0.5 = −0.375, −0.125, 0.125, …, 1.375, clamped to [0, 1].
UP_2_TO_8 = np.array([[1, 0], [1, 0], [0.875, 0.125], [0.625, 0.375], [0.375, 0.625], [0.125, 0.875], [0, 1], [0, 1]])
# 16 → 8 pixels: src = 2 · dst + 0.5, halfway between pixels 2·dst and 2·dst + 1 (no antialiasing).
DOWN_16_TO_8 = np.kron(np.eye(8), [0.5, 0.5])

HALF = Preprocessing(height=8, width=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))  # x ↦ 2x/255 − 1


def preprocess(images, color_order, contract):
    out = np.full((len(images), 3, contract.height, contract.width), np.nan, np.float32)
    return NumpyPreprocessor().preprocess(images, color_order, contract, out)


def test_upsampling_2x2_to_8x8_by_hand():
    red = np.array([[0, 255], [255, 0]], np.float64)
    green = np.array([[10, 20], [30, 40]], np.float64)
    blue = np.full((2, 2), 51.0)
    bgr = np.stack([blue, green, red], axis=2).astype(np.uint8)
    x = preprocess([bgr], "BGR", HALF)[0]
    for channel, plane in enumerate((red, green, blue)):  # the contract's order is RGB
        expected = 2 * (UP_2_TO_8 @ plane @ UP_2_TO_8.T) / 255 - 1
        np.testing.assert_allclose(x[channel], expected, atol=1e-6)
    assert x[0, 0, 0] == pytest.approx(-1.0) and x[0, 0, 7] == pytest.approx(1.0)  # corners keep their pixel
    assert x[0, 3, 3] == pytest.approx(2 * (0.625 * 0.375 * 2 * 255) / 255 - 1)  # 0.625·0.375 of each red corner
    np.testing.assert_allclose(x[2], 2 * 51 / 255 - 1, atol=1e-6)


def test_downsampling_16x2_to_8x8_averages_pairs_of_rows():
    rows = np.arange(16, dtype=np.float64)[:, None] * 16 + np.array([[0.0, 8.0]])  # (16, 2): 0, 8, 16, 24, ...
    rgb = np.repeat(rows[:, :, None], 3, axis=2).astype(np.uint8)
    x = preprocess([rgb], "RGB", HALF)[0]
    expected = 2 * (DOWN_16_TO_8 @ rows @ UP_2_TO_8.T) / 255 - 1
    for channel in range(3):
        np.testing.assert_allclose(x[channel], expected, atol=1e-6)
    assert x[0, 0, 0] == pytest.approx(2 * 8 / 255 - 1)  # rows 0 and 1, column 0: (0 + 16) / 2


def test_normalization_uses_the_contracts_mean_and_std_per_channel():
    contract = Preprocessing(height=8, width=8)  # ImageNet mean/std, RGB
    gray = np.full((5, 7, 3), 128, np.uint8)
    x = preprocess([gray], "BGR", contract)[0]
    for channel, (mean, std) in enumerate(zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))):
        np.testing.assert_allclose(x[channel], (128 / 255 - mean) / std, rtol=1e-6)


def test_a_batch_of_differently_sized_images_fills_every_row_and_bgr_rgb_agree(rng):
    images = [rng.integers(0, 256, shape + (3,), dtype=np.uint8) for shape in ((1, 1), (2, 2), (16, 2), (333, 517))]
    out = preprocess(images, "BGR", HALF)
    assert np.isfinite(out).all() and out.min() >= -1 and out.max() <= 1
    single = np.full((1, 1, 3), (10, 20, 30), np.uint8)  # one pixel: every output pixel is it
    np.testing.assert_allclose(preprocess([single], "BGR", HALF)[0][:, 0, 0], [2 * c / 255 - 1 for c in (30, 20, 10)], atol=1e-6)
    flipped = [np.ascontiguousarray(im[:, :, ::-1]) for im in images]
    np.testing.assert_array_equal(preprocess(flipped, "RGB", HALF), out)


def test_non_contiguous_views_are_fine():
    bgra = np.zeros((6, 6, 4), np.uint8)
    bgra[1:3, 2:4, :3] = [[[0, 0, 0], [0, 0, 255]], [[0, 0, 255], [0, 0, 0]]]  # the 2x2 red pattern, inside
    x = preprocess([bgra[1:3, 2:4, :3]], "BGR", HALF)[0]
    np.testing.assert_allclose(x[0], 2 * (UP_2_TO_8 @ np.array([[0, 255], [255, 0]]) @ UP_2_TO_8.T) / 255 - 1, atol=1e-6)


def test_upsample_by_hand_and_clipped_to_0_1():
    small = np.array([[-0.5, 0.25], [1.0, 1.5]], np.float32)
    full = NumpyPreprocessor().upsample(np.kron(small, np.ones((4, 4), np.float32)), 8, 8)  # 8x8 → 8x8: unchanged
    np.testing.assert_allclose(full, np.clip(np.kron(small, np.ones((4, 4))), 0, 1), atol=1e-7)
    up = NumpyPreprocessor().upsample(small, 8, 8)
    np.testing.assert_allclose(up, np.clip(UP_2_TO_8 @ small.astype(np.float64) @ UP_2_TO_8.T, 0, 1), atol=1e-6)
    assert up.dtype == np.float32 and up.min() == 0 and up.max() == 1
    out = np.empty((8, 8), np.float32)
    assert NumpyPreprocessor().upsample(small, 8, 8, out=out) is out and np.array_equal(out, up)


def test_auto_falls_back_to_numpy_without_the_native_library():
    pre = select_preprocessor("auto")
    assert pre.name == "numpy" or pre.name.startswith("native:")


# --- native analysis: tiles and stitching (fakelocator.tiling is the reference) -----------------

from fakelocator.contract import to_network_tiles  # noqa: E402
from fakelocator.errors import FakeLocatorError  # noqa: E402
from fakelocator.runtime.levels import map_levels  # noqa: E402
from fakelocator.tiling import TileGrid, stitch  # noqa: E402


@pytest.mark.parametrize("shape", [(1, 1), (17, 90), (64, 48), (100, 130)])
@pytest.mark.parametrize("color_order", ["BGR", "RGB"])
def test_tiles_are_the_contracts_tiles(shape, color_order, rng):
    contract = Preprocessing(height=64, width=48, analysis="native", tile_overlap=8)
    image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    want, grid = to_network_tiles(image, contract, color_order)
    batch = np.full((len(grid) + 2, 3, 64, 48), np.nan, np.float32)
    got = NumpyPreprocessor().tiles(image, grid, color_order, contract, batch[1:1 + len(grid)])
    assert np.shares_memory(got, batch)
    assert np.array_equal(batch[1:1 + len(grid)], want)
    assert np.isnan(batch[0]).all() and np.isnan(batch[-1]).all()  # nothing outside its slice


def test_stitch_is_the_contracts_clipped(rng):
    grid = TileGrid.of(150, 130, 64, 48, 8)
    maps = rng.random((len(grid), 64, 48), dtype=np.float32) * 1.4 - 0.2
    pre = NumpyPreprocessor()
    buf = np.full((150, 130), 7.0, np.float32)
    got = pre.stitch(maps, grid, "linear", out=buf)
    assert got is buf
    assert np.array_equal(got, np.clip(stitch(maps, grid), 0, 1))
    levels = pre.stitch_u8(maps, grid, "linear")
    assert levels.dtype == np.uint8 and levels.shape == (150, 130)
    assert np.array_equal(levels, np.floor(got * np.float32(255) + np.float32(0.5)).astype(np.uint8))


def test_map_levels_maps_nan_to_zero_and_clips():
    m = np.array([[np.nan, -1.0, 0.0, 0.5, 1.0, 2.0, 1 / 510 - 1e-6, 1 / 510 + 1e-6]], np.float32)
    assert map_levels(m).tolist() == [[0, 0, 0, 128, 255, 255, 0, 1]]


def test_tiles_and_stitch_refuse_wrong_buffers(rng):
    contract = Preprocessing(height=32, width=32, analysis="native", tile_overlap=4)
    image = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    grid = TileGrid.of(40, 40, 32, 32, 4)
    pre = NumpyPreprocessor()
    with pytest.raises(FakeLocatorError, match="tiles out"):
        pre.tiles(image, grid, "BGR", contract, np.empty((len(grid) - 1, 3, 32, 32), np.float32))
    with pytest.raises(FakeLocatorError, match="does not match"):
        pre.tiles(image[:39], grid, "BGR", contract, np.empty((len(grid), 3, 32, 32), np.float32))
    maps = np.zeros((len(grid), 32, 32), np.float32)
    with pytest.raises(FakeLocatorError, match="stitched map out"):
        pre.stitch(maps, grid, "linear", out=np.empty((40, 40), np.float64))
    with pytest.raises(FakeLocatorError, match="stitched map out"):
        pre.stitch_u8(maps, grid, "linear", out=np.empty((40, 41), np.uint8))


@pytest.mark.parametrize("shape", [(1, 1), (17, 900), (223, 223), (224, 224), (225, 225), (1080, 1920)])
def test_numpy_tiles_at_the_issue_sizes_are_the_references(shape, rng):
    contract = Preprocessing(analysis="native")
    image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    want, grid = to_network_tiles(image, contract, "BGR")
    got = NumpyPreprocessor().tiles(image, grid, "BGR", contract, np.empty_like(want))
    assert np.array_equal(got, want)
