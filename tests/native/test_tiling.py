"""Native analysis on the CPU: the C++ tiles and stitching against fakelocator.tiling (the reference).

Tolerances: the kernels do the reference's arithmetic in the reference's order (float32
normalization ``(v - mean255) * inv_std255``; stitch weights in float64 rounded once to float32,
products ``(map * wy) * wx`` summed in row-major tile order; no fused multiply-adds), so tiles and
float32 maps are compared with ``atol=1e-6`` and measured equal; the uint8 levels may differ from
the levels of the float32 result by at most one (measured: 0).
"""

import numpy as np
import pytest

from fakelocator.contract import Preprocessing, to_network_tiles
from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.levels import map_levels
from fakelocator.runtime.preprocess import NativePreprocessor, NumpyPreprocessor
from fakelocator.tiling import TileGrid, stitch, tile_count

SIZES = [(1, 1), (17, 900), (223, 223), (224, 224), (225, 225), (1080, 1920), (2160, 3840)]
CONTRACT = Preprocessing(analysis="native")  # 224² tiles, overlap 32


@pytest.mark.parametrize("height,width", SIZES)
def test_tiles_are_the_references(lib, height, width):
    rng = np.random.default_rng(height * 31 + width)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    for order in ("BGR", "RGB"):
        want, grid = to_network_tiles(image, CONTRACT, order)
        got = lib.tiles([image], order, CONTRACT)
        assert got.shape == want.shape == (len(grid), 3, 224, 224)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("height,width", SIZES)
def test_stitch_is_the_references(lib, height, width):
    rng = np.random.default_rng(height * 17 + width)
    grid = TileGrid.of(height, width, 224, 224, 32)
    maps = rng.uniform(-0.2, 1.2, (len(grid), 224, 224)).astype(np.float32)
    want = np.clip(stitch(maps, grid), 0, 1)
    got = lib.stitch(maps, (height, width), 32)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    levels = lib.stitch(maps, (height, width), 32, dtype=np.uint8)
    assert levels.dtype == np.uint8
    assert np.abs(levels.astype(np.int16) - map_levels(want)).max() <= 1


@pytest.mark.parametrize("height,width", SIZES)
def test_cutting_and_stitching_returns_the_image(lib, height, width):
    """Tiles of an image with mean 0 and std 1/255 hold its values; stitched back, they are the image."""
    contract = Preprocessing(analysis="native", mean=(0, 0, 0), std=(1 / 255,) * 3)
    image = np.random.default_rng(width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    tiles = lib.tiles([image], "RGB", contract)
    for c in range(3):
        back = lib.stitch(np.ascontiguousarray(tiles[:, c]) / np.float32(255), (height, width), 32, dtype=np.uint8)
        np.testing.assert_array_equal(back, image[..., c])


def test_a_constant_map_stays_constant(lib):
    for height, width in SIZES:
        n = tile_count(height, width, 224, 224, 32)
        out = lib.stitch(np.full((n, 224, 224), 0.37, np.float32), (height, width), 32)
        assert np.abs(out - 0.37).max() < 1e-6


def test_many_images_share_one_batch_and_threads_do_not_change_results(lib, rng):
    contract = Preprocessing(height=32, width=40, analysis="native", tile_overlap=6)
    sizes = [(1, 1), (33, 41), (100, 7), (64, 200), (32, 40)]
    frames = [rng.integers(0, 256, (h, w + 9, 3), dtype=np.uint8)[:, 4:w + 4] for h, w in sizes]  # row-strided crops
    counts = [tile_count(h, w, 32, 40, 6) for h, w in sizes]
    out = np.full((sum(counts) + 3, 3, 32, 40), 9, np.float32)
    lib.tiles(frames, "BGR", contract, out, start=2, threads=2)
    assert (out[:2] == 9).all() and (out[-1] == 9).all()
    first = 2
    for frame, count in zip(frames, counts):
        want, _ = to_network_tiles(np.ascontiguousarray(frame), contract, "BGR")
        np.testing.assert_allclose(out[first:first + count], want, rtol=0, atol=1e-6)
        first += count
    maps = [rng.random((n, 32, 40), dtype=np.float32) for n in counts]
    one = lib.stitch_batch(maps, sizes, 6, threads=1)
    two = lib.stitch_batch(maps, sizes, 6, threads=2)
    for a, b, m, (h, w) in zip(one, two, maps, sizes):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, np.clip(stitch(m, TileGrid.of(h, w, 32, 40, 6)), 0, 1), rtol=0, atol=1e-6)


def test_float16_tiles_are_the_float32_tiles_rounded(lib, rng):
    image = rng.integers(0, 256, (300, 260, 3), dtype=np.uint8)
    f32 = lib.tiles([image], "BGR", CONTRACT)
    f16 = lib.tiles([image], "BGR", CONTRACT, np.empty(f32.shape, np.float16))
    np.testing.assert_array_equal(f16, f32.astype(np.float16))


def test_nan_in_a_tile_map(lib):
    maps = np.full((1, 224, 224), 0.5, np.float32)
    maps[0, 3, 4] = np.nan
    full = lib.stitch(maps, (100, 100), 32)
    levels = lib.stitch(maps, (100, 100), 32, dtype=np.uint8)
    assert np.isnan(full[3, 4]) and np.isnan(full).sum() == 1  # as np.clip keeps NaN
    assert levels[3, 4] == 0 and (np.delete(levels.ravel(), 3 * 100 + 4) == 128).all()


def test_layout_and_tile_count_are_the_references(lib, rng):
    for tile, overlap in ((224, 32), (224, 0), (64, 31), (9, 4)):
        for length in list(range(1, 700, 7)) + [1080, 1920, 2160, 3840, 32767]:
            assert lib.tile_count(length, 1, (tile, tile), overlap) == tile_count(length, 1, tile, tile, overlap)
    # the starts themselves, through stitching: small tiles over many lengths
    for width in (10, 11, 17, 100, 257, 1000):
        grid = TileGrid.of(9, width, 9, 9, 4)
        maps = rng.random((len(grid), 9, 9), dtype=np.float32)
        np.testing.assert_allclose(lib.stitch(maps, (9, width), 4), stitch(maps, grid), rtol=0, atol=1e-6)


def test_bad_arguments_are_refused_with_the_reason(lib, rng):
    image = rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)
    with pytest.raises(FakeLocatorError, match="tile overlap must be in"):
        lib.tiles([image], "RGB", CONTRACT, overlap=112)
    with pytest.raises(FakeLocatorError, match="do not fit"):
        lib.tiles([image, image], "RGB", CONTRACT, np.empty((1, 3, 224, 224), np.float32))
    with pytest.raises(FakeLocatorError, match="packed"):
        lib.tiles([image[:, :, ::-1]], "RGB", CONTRACT)
    with pytest.raises(FakeLocatorError, match="takes 4 tiles"):
        lib.stitch(np.zeros((3, 224, 224), np.float32), (300, 300), 32)
    with pytest.raises(FakeLocatorError, match="float32"):
        lib.stitch(np.zeros((1, 224, 224), np.float64), (30, 30), 32)
    with pytest.raises(FakeLocatorError, match="float32 or uint8"):
        lib.stitch(np.zeros((1, 224, 224), np.float32), (30, 30), 32, dtype=np.float16)
    with pytest.raises(FakeLocatorError, match="stitch output 0"):
        lib.stitch(np.zeros((1, 224, 224), np.float32), (30, 30), 32, out=np.empty((30, 31), np.float32))
    with pytest.raises(FakeLocatorError, match="tile window"):
        lib.stitch(np.zeros((1, 224, 224), np.float32), (30, 30), 32, window="hann")


@pytest.mark.parametrize("height,width", [(1, 1), (17, 900), (225, 225), (700, 500)])
def test_the_native_preprocessor_is_the_numpy_one(lib, height, width):
    rng = np.random.default_rng(width)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    grid = TileGrid.of(height, width, 224, 224, 32)
    ours, ref = NativePreprocessor(lib), NumpyPreprocessor()
    batch = np.zeros((len(grid) + 1, 3, 224, 224), np.float32)
    got = ours.tiles(image, grid, "BGR", CONTRACT, batch[1:])
    assert np.shares_memory(got, batch) and (batch[0] == 0).all()
    np.testing.assert_allclose(got, ref.tiles(image, grid, "BGR", CONTRACT, np.empty_like(batch[1:])), rtol=0, atol=1e-6)
    maps = rng.uniform(-0.1, 1.1, (len(grid), 224, 224)).astype(np.float32)
    buf = np.empty((height, width), np.float32)
    assert ours.stitch(maps, grid, "linear", out=buf) is buf
    np.testing.assert_allclose(buf, ref.stitch(maps, grid, "linear"), rtol=0, atol=1e-6)
    levels = ours.stitch_u8(maps, grid, "linear")
    assert np.abs(levels.astype(np.int16) - ref.stitch_u8(maps, grid, "linear")).max() <= 1


def test_a_rectangle_of_the_layout_is_those_tiles(lib, rng):
    """The pipeline cuts a large image's tiles across batches (runtime.pipeline.sub_grids): rectangles of its grid."""
    from dataclasses import replace

    image = rng.integers(0, 256, (700, 1000, 3), dtype=np.uint8)
    grid = TileGrid.of(700, 1000, 224, 224, 32)  # 4 x 6 tiles
    ours, ref = NativePreprocessor(lib), NumpyPreprocessor()
    for ys, xs in ((slice(1, 3), slice(None)), (slice(3, 4), slice(2, 5)), (slice(0, 1), slice(0, 1)), (slice(None), slice(None))):
        sub = replace(grid, ys=grid.ys[ys], xs=grid.xs[xs])
        got = ours.tiles(image, sub, "RGB", CONTRACT, np.empty((len(sub), 3, 224, 224), np.float32))
        np.testing.assert_allclose(got, ref.tiles(image, sub, "RGB", CONTRACT, np.empty_like(got)), rtol=0, atol=1e-6)
    with pytest.raises(FakeLocatorError, match="not a rectangle"):
        ours.tiles(image, replace(grid, ys=grid.ys[::2]), "RGB", CONTRACT, np.empty((2 * 6, 3, 224, 224), np.float32))
    with pytest.raises(FakeLocatorError, match="outside its 4 x 6 tiles"):
        lib.tiles([image], "RGB", CONTRACT, rects=[(3, 2, 0, 6)])
