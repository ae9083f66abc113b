"""The native analysis rule (fakelocator.tiling): layout, mirrored padding, seamless stitching, pooling."""

import numpy as np
import pytest

from fakelocator.contract import Preprocessing, to_network_input, to_network_tiles
from fakelocator.errors import FakeLocatorError
from fakelocator.tiling import TileGrid, axis_weights, extract_tiles, pool_scores, stitch, tile_count, tile_starts

SIZES = [(1, 1), (17, 900), (223, 223), (224, 224), (225, 225), (1080, 1920), (2160, 3840)]


@pytest.mark.parametrize("height,width", SIZES)
def test_cutting_and_stitching_returns_the_image_exactly(height, width):
    rng = np.random.default_rng(height * 7 + width)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    grid = TileGrid.of(height, width, 224, 224, 32)
    tiles = extract_tiles(image, grid)  # (n, 224, 224, 3)
    assert tiles.shape == (len(grid), 224, 224, 3)
    for c in range(3):
        back = stitch(tiles[..., c].astype(np.float32), grid)
        assert back.shape == (height, width)
        np.testing.assert_allclose(back, image[..., c], atol=1e-3)
        assert np.array_equal(np.rint(back).astype(np.uint8), image[..., c])


@pytest.mark.parametrize("height,width", SIZES)
def test_the_window_leaves_no_seam_on_a_constant_map(height, width):
    grid = TileGrid.of(height, width, 224, 224, 32)
    maps = np.full((len(grid), 224, 224), 0.37, np.float32)
    out = stitch(maps, grid)
    assert np.abs(out - 0.37).max() < 1e-6


def test_weights_are_a_partition_of_unity_that_ramps_over_the_overlap():
    for length in (1, 100, 224, 225, 500, 1080, 1920):
        starts = tile_starts(length, 224, 32)
        total = np.zeros(length)
        for s, w in zip(starts, axis_weights(length, 224, 32)):
            total[s:s + w.size] += w
            assert (w > 0).all()
        np.testing.assert_allclose(total, 1.0, atol=1e-6)
    # two tiles over 416 px overlap by exactly 32: the crossfade is linear across those 32 pixels
    w0, w1 = axis_weights(416, 224, 32)
    assert w0[:192].min() == 1.0 and w1[32:].min() == 1.0
    assert np.all(np.diff(w0[192:]) < 0) and np.all(np.diff(w1[:32]) > 0)


def test_layout_covers_every_pixel_with_at_least_the_overlap_and_ends_at_the_edge():
    for length in (225, 300, 1080, 1920, 3840):
        s = tile_starts(length, 224, 32)
        assert s[0] == 0 and s[-1] == length - 224
        assert all(b - a <= 224 - 32 for a, b in zip(s, s[1:]))
    assert tile_starts(100, 224, 32) == (0,)
    assert tile_count(1080, 1920, 224, 224, 32) == 60
    assert tile_count(2160, 3840, 256, 256, 32) == 170


def test_small_images_are_padded_by_mirroring_never_resampled():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    grid = TileGrid.of(2, 3, 8, 8, 2)
    tile = extract_tiles(image, grid)[0]
    assert np.array_equal(tile[:2, :3], image)
    assert np.array_equal(tile[2:4, :3], image[::-1])  # rows mirrored: abc|cba
    assert np.array_equal(tile[:2, 3:6], image[:, ::-1])


def test_native_tiles_are_normalized_exactly_like_a_fit_input():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    fit = Preprocessing()
    native = Preprocessing(analysis="native")
    tiles, grid = to_network_tiles(image, native, "BGR")
    assert len(grid) == 1
    # a 224² image under fit is resized 224 → 224 (an identity), so both inputs must agree
    np.testing.assert_allclose(tiles[0], to_network_input(image, fit, "BGR"), atol=1e-5)
    # hand-computed: channel 0 of the RGB tile is the BGR image's channel 2
    expected = (image[5, 7, 2] / 255.0 - 0.485) / 0.229
    assert abs(tiles[0, 0, 5, 7] - expected) < 1e-5


def test_pooling_rules():
    scores = [0.1, 0.9, 0.2, 0.7]
    assert pool_scores(scores, "max") == pytest.approx(0.9)
    assert pool_scores(scores, "mean") == pytest.approx(0.475)
    assert pool_scores(scores, "top2") == pytest.approx(0.8)
    assert pool_scores([0.3], "top2") == pytest.approx(0.3)
    with pytest.raises(FakeLocatorError):
        pool_scores(scores, "median")


def test_contract_carries_the_analysis_and_an_old_model_loads_as_fit():
    c = Preprocessing(256, 256, analysis="native", tile_overlap=48, tile_pooling="mean")
    assert Preprocessing.from_json(c.to_json()) == c
    old = {"height": 224, "width": 224, "color_order": "RGB", "mean": [0.485, 0.456, 0.406],
           "std": [0.229, 0.224, 0.225], "resize": "bilinear_half_pixel", "map_resize": "bilinear_half_pixel"}
    assert Preprocessing.from_dict(old).analysis == "fit"
    assert c.with_analysis("fit").analysis == "fit" and c.with_analysis().analysis == "native"
    with pytest.raises(FakeLocatorError, match="analysis"):
        Preprocessing(analysis="tiles")
    with pytest.raises(FakeLocatorError, match="tile_overlap"):
        Preprocessing(analysis="native", tile_overlap=200)
