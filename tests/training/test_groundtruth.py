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
