"""The runtime's batch preprocessing is the contract's arithmetic (fakelocator.contract)."""

from __future__ import annotations

import numpy as np
import pytest

from fakelocator.contract import Preprocessing, to_full_resolution, to_network_input
from fakelocator.runtime.preprocess import NumpyPreprocessor, select_preprocessor

SHAPES = [(1, 1), (1, 300), (300, 1), (224, 224), (448, 448), (225, 223), (7, 3), (333, 517), (1080, 1920)]


@pytest.mark.parametrize("color_order", ["BGR", "RGB"])
def test_batch_is_the_contract_per_image(color_order, rng):
    contract = Preprocessing(height=64, width=48)
    images = [rng.integers(0, 256, s + (3,), dtype=np.uint8) for s in SHAPES]
    out = np.empty((len(images), 3, 64, 48), np.float32)
    NumpyPreprocessor().preprocess(images, color_order, contract, out)
    for image, x in zip(images, out):
        assert np.array_equal(x, to_network_input(image, contract, color_order))


def test_non_contiguous_views_are_fine(rng):
    bgra = rng.integers(0, 256, (50, 60, 4), dtype=np.uint8)
    view = bgra[5:45, 10:50, :3]
    out = np.empty((1, 3, 32, 32), np.float32)
    NumpyPreprocessor().preprocess([view], "BGR", Preprocessing(height=32, width=32), out)
    np.testing.assert_allclose(out[0], to_network_input(np.ascontiguousarray(view), Preprocessing(height=32, width=32), "BGR"), atol=1e-3)


def test_upsample_is_the_contracts(rng):
    small = rng.random((32, 32), dtype=np.float32) * 1.2 - 0.1
    full = NumpyPreprocessor().upsample(small, 101, 77)
    assert np.array_equal(full, to_full_resolution(small, 101, 77))
    assert full.min() >= 0 and full.max() <= 1


def test_auto_falls_back_to_numpy_without_the_native_library():
    pre = select_preprocessor("auto")
    assert pre.name == "numpy" or pre.name.startswith("native:")


# --- native analysis: tiles and stitching (fakelocator.tiling is the reference) -----------------

from fakelocator.contract import to_network_tiles  # noqa: E402
from fakelocator.errors import FakeLocatorError  # noqa: E402
from fakelocator.runtime.preprocess import quantize_u8  # noqa: E402
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


def test_quantize_u8_maps_nan_to_zero_and_clips():
    m = np.array([[np.nan, -1.0, 0.0, 0.5, 1.0, 2.0, 1 / 510 - 1e-6, 1 / 510 + 1e-6]], np.float32)
    assert quantize_u8(m).tolist() == [[0, 0, 0, 128, 255, 255, 0, 1]]


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
