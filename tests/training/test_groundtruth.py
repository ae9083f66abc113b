import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.training.groundtruth import entire_synthesis_map, partial_manipulation_map, real_map


def test_partial_map_is_eq7_with_bt601_luma_of_the_absolute_difference():
    real = np.array([[[10, 20, 30], [255, 0, 0]]], np.uint8)  # RGB
    fake = np.array([[[20, 0, 30], [0, 0, 0]]], np.uint8)
    m = partial_manipulation_map(real, fake)
    expected = [[(0.299 * 10 + 0.587 * 20 + 0.114 * 0) / 255, 0.299 * 255 / 255]]
    np.testing.assert_allclose(m, expected, rtol=1e-6)
    assert m.dtype == np.float32


def test_partial_map_is_symmetric_and_matches_opencv_gray_of_the_difference(rng):
    import cv2

    real = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    fake = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    m = partial_manipulation_map(real, fake)
    np.testing.assert_array_equal(m, partial_manipulation_map(fake, real))
    diff = np.abs(real.astype(np.float32) - fake.astype(np.float32))
    np.testing.assert_allclose(m, cv2.cvtColor(diff, cv2.COLOR_RGB2GRAY) / 255, atol=1e-6)
    np.testing.assert_allclose(m, partial_manipulation_map(real[..., ::-1], fake[..., ::-1], "BGR"), atol=1e-6)


def test_identical_images_give_zero_and_entire_synthesis_all_ones():
    img = np.full((4, 5, 3), 77, np.uint8)
    assert not partial_manipulation_map(img, img).any()
    assert (entire_synthesis_map(4, 5) == 1).all() and not real_map(4, 5).any()


def test_pairs_of_different_sizes_are_refused():
    with pytest.raises(FakeLocatorError, match="differ in size"):
        partial_manipulation_map(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))


def test_eq7_is_elementwise_whatever_the_memory_layout():
    # Each pixel's value is computed from that pixel alone, in one fixed order, so shuffled,
    # transposed or strided views give bit-identical values (a matrix product need not: its
    # SIMD/FMA path can differ between a contiguous array and a view on AVX-512 CPUs).
    rng = np.random.default_rng(3)
    real = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    fake = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    m = partial_manipulation_map(real, fake)
    d = np.abs(real.astype(np.float32) - fake.astype(np.float32))
    w = [np.float32(v) for v in (0.299, 0.587, 0.114)]
    expected = (d[..., 0] * w[0] + d[..., 1] * w[1] + d[..., 2] * w[2]) / np.float32(255)
    np.testing.assert_array_equal(m, expected)
    np.testing.assert_array_equal(partial_manipulation_map(real.transpose(1, 0, 2), fake.transpose(1, 0, 2)), m.T)
    np.testing.assert_array_equal(partial_manipulation_map(real[::-1, ::2], fake[::-1, ::2]), m[::-1, ::2])
    tiles = lambda a: np.concatenate([a[32:], a[:32]])  # noqa: E731 - a tile shuffle like Disorganize's
    np.testing.assert_array_equal(partial_manipulation_map(tiles(real), tiles(fake)), tiles(m))
    with pytest.raises(FakeLocatorError, match="color_order"):
        partial_manipulation_map(real, fake, "GBR")
