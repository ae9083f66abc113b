import numpy as np
import pytest

from fakelocator import degradations
from fakelocator.degradations import DEGRADATIONS, degrade, gaussian_blur, gaussian_noise, jpeg, low_resolution
from fakelocator.errors import FakeLocatorError


def smooth_image(h=48, w=64) -> np.ndarray:
    """A face-like smooth RGB image: gradients plus a soft disc."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    disc = np.exp(-(((y - h / 2) / (h / 4)) ** 2 + ((x - w / 2) / (w / 4)) ** 2))
    img = np.stack([60 + 120 * x / w, 80 + 100 * y / h, 40 + 150 * disc], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name,level", [("jpeg", 50), ("blur", 5), ("noise", 0.01), ("lowres", 2.0)])
def test_every_degradation_keeps_shape_and_dtype_and_leaves_its_input_alone(name, level, rng):
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    before = img.copy()
    out = degrade(img, name, level, rng=1)
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(img, before)
    assert not np.array_equal(out, img)


def test_jpeg_at_quality_100_is_close_to_identity_and_error_grows_as_quality_drops():
    img = smooth_image()
    errors = [np.abs(jpeg(img, q).astype(int) - img).mean() for q in (100, 90, 50, 10)]
    assert errors[0] < 1.0
    assert errors == sorted(errors) and errors[-1] > 3 * errors[0]


def test_jpeg_respects_the_channel_order():
    img = smooth_image()
    np.testing.assert_array_equal(jpeg(img, 60), jpeg(img[:, :, ::-1], 60, color_order="BGR")[:, :, ::-1])


def test_blur_is_opencvs_gaussian_filter_and_kernel_1_is_identity(rng):
    import cv2

    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(gaussian_blur(img, 1), img)
    np.testing.assert_array_equal(gaussian_blur(img, 5), cv2.GaussianBlur(img, (5, 5), 0))
    assert gaussian_blur(img, 9).std() < gaussian_blur(img, 3).std() < img.std()
    flat = np.full((16, 16, 3), 90, np.uint8)
    np.testing.assert_array_equal(gaussian_blur(flat, 7), flat)


def test_noise_variance_is_on_the_unit_scale_and_a_seed_fixes_the_noise():
    grey = np.full((256, 256, 3), 128, np.uint8)
    out = gaussian_noise(grey, 0.01, 0)  # std 0.1 on 0..1 = 25.5 grey levels
    assert (out.astype(float) - 128).std() == pytest.approx(25.5, rel=0.03)
    np.testing.assert_array_equal(out, gaussian_noise(grey, 0.01, np.random.default_rng(0)))
    assert not np.array_equal(out, gaussian_noise(grey, 0.01, 1))
    np.testing.assert_array_equal(gaussian_noise(grey, 0.0, 0), grey)


def test_low_resolution_goes_down_by_the_ratio_and_back_up_bilinearly():
    import cv2

    img = smooth_image(40, 60)
    np.testing.assert_array_equal(low_resolution(img, 1.0), img)
    small = cv2.resize(img, (30, 20), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(low_resolution(img, 2.0), cv2.resize(small, (60, 40), interpolation=cv2.INTER_LINEAR))
    checker = ((np.indices((40, 60)).sum(0) % 2) * 255).astype(np.uint8)[:, :, None].repeat(3, 2)
    assert low_resolution(checker, 2.0).std() < 0.2 * checker.std(), "the finest detail does not survive"
    assert np.abs(low_resolution(img, 2.0).astype(int) - img).mean() < 2, "smooth content does"
    assert low_resolution(img, 1000.0).shape == img.shape


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda im: jpeg(im, 0), "quality"),
        (lambda im: jpeg(im, 101), "quality"),
        (lambda im: gaussian_blur(im, 4), "odd"),
        (lambda im: gaussian_noise(im, -0.1, 0), "variance"),
        (lambda im: low_resolution(im, 0.5), "ratio"),
        (lambda im: degrade(im, "motion", 3), "unknown degradation"),
        (lambda im: jpeg(im[:, :, 0], 50), r"\(H, W, 3\)"),
        (lambda im: gaussian_blur(im.astype(np.float32), 3), "uint8"),
    ],
)
def test_bad_parameters_and_images_are_refused_with_a_reason(call, message):
    with pytest.raises(FakeLocatorError, match=message):
        call(np.zeros((8, 8, 3), np.uint8))


def test_the_registry_names_each_parameter_and_degrade_dispatches_to_the_functions():
    img = smooth_image()
    assert set(DEGRADATIONS) == {"jpeg", "blur", "noise", "lowres"}
    assert all(d.parameter for d in DEGRADATIONS.values())
    np.testing.assert_array_equal(degrade(img, "jpeg", 70), degradations.jpeg(img, 70))
    np.testing.assert_array_equal(degrade(img, "noise", 0.002), gaussian_noise(img, 0.002, 0))
