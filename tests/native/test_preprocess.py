"""The native preprocessing reproduces fakelocator.contract.to_network_input.

Measured on the dev machine: max abs error 7.2e-7 (normalized units) against the contract for
every size below except single-row or single-column images, where OpenCV itself (which the
contract calls) strays from its documented rule by up to 4.5e-4 and the native result is instead
within 1.4e-7 of the exact rule computed in float64.
"""

import numpy as np
import pytest

from fakelocator.contract import Preprocessing, to_network_input
from fakelocator.errors import FakeLocatorError

MAX_ERR = 1e-5  # normalized units; (x / 255 - mean) / std spans about [-2.1, 2.7]

SIZES = [
    (2, 2),  # tiny, upscaled
    (5, 3),
    (37, 500),  # wide, upscaled vertically, downscaled horizontally
    (224, 224),  # identity
    (448, 448),  # exact 2x: OpenCV switches to its area path here
    (100, 101),
    (2, 4000),  # extreme aspect ratios
    (4000, 3),
    (1080, 1920),  # a 1080p frame
]


def exact_reference(image: np.ndarray, contract: Preprocessing, color_order: str) -> np.ndarray:
    """The contract's rule computed in float64 straight from its definition."""
    if color_order != contract.color_order:
        image = image[:, :, ::-1]
    in_h, in_w = image.shape[:2]

    def taps(n_in, n_out):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        i0 = np.floor(src).astype(int)
        return i0, np.minimum(i0 + 1, n_in - 1), src - i0

    y0, y1, wy = taps(in_h, contract.height)
    x0, x1, wx = taps(in_w, contract.width)
    img = image.astype(np.float64)
    wx, wy = wx[None, :, None], wy[:, None, None]
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bottom = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    x = (top * (1 - wy) + bottom * wy) / 255.0
    return ((x - np.array(contract.mean)) / np.array(contract.std)).transpose(2, 0, 1)


@pytest.mark.parametrize("color_order", ["RGB", "BGR"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_float32_input_matches_the_contract(lib, rng, size, color_order):
    contract = Preprocessing()
    image = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    out = lib.preprocess([image], color_order, contract)
    assert out.shape == (1, 3, 224, 224) and out.dtype == np.float32
    assert np.abs(out[0] - to_network_input(image, contract, color_order)).max() <= MAX_ERR


@pytest.mark.parametrize("size", [(1, 1), (1, 4000), (3000, 1), (1, 7)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_single_row_or_column_images_follow_the_exact_rule(lib, rng, size):
    contract = Preprocessing()
    image = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    out = lib.preprocess([image], "BGR", contract)[0]
    assert np.abs(out - exact_reference(image, contract, "BGR")).max() <= MAX_ERR
    # OpenCV's generic path (used for these shapes) rounds source coordinates to float32.
    assert np.abs(out - to_network_input(image, contract, "BGR")).max() <= 1e-3


@pytest.mark.parametrize("size", [(1080, 1920), (37, 500), (5, 3)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_float16_input_is_the_float32_input_rounded_to_nearest_even(lib, rng, size):
    contract = Preprocessing()
    image = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    out = lib.preprocess([image], "RGB", contract, np.empty((1, 3, 224, 224), np.float16))
    np.testing.assert_array_equal(out, lib.preprocess([image], "RGB", contract).astype(np.float16))
    expected = to_network_input(image, contract, "RGB")
    half_ulp = np.spacing(np.abs(expected.astype(np.float16))).astype(np.float32) / 2
    assert np.all(np.abs(out[0].astype(np.float32) - expected) <= half_ulp + MAX_ERR)


def test_float16_conversion_handles_subnormals_and_overflow(lib):
    tiny = Preprocessing(height=8, width=8, mean=(0, 0, 0), std=(1e4, 1e4, 1e4))  # outputs < 1e-4: half subnormals
    huge = Preprocessing(height=8, width=8, mean=(0, 0, 0), std=(1e-5, 1e-5, 1e-5))  # up to 1e5: beyond float16
    image = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3) * 3
    for contract in (tiny, huge):
        out = lib.preprocess([image], "RGB", contract, np.empty((1, 3, 8, 8), np.float16))
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(out, lib.preprocess([image], "RGB", contract).astype(np.float16))
    assert np.isinf(out).any() and np.isfinite(out).any()


def test_a_batch_of_crops_of_different_sizes_goes_to_its_batch_indices(lib, rng):
    contract = Preprocessing(height=64, width=48)
    frame = rng.integers(0, 256, size=(720, 1280, 3), dtype=np.uint8)
    crops = [frame[10:300, 20:500], frame[:, 7:8], frame[100:101, :], frame[33:700, 640:1279]]
    assert all(c.strides[0] == 1280 * 3 for c in crops)  # views with the frame's row pitch
    out = np.full((6, 3, 64, 48), np.nan, np.float32)
    lib.preprocess(crops, "BGR", contract, out, start=1)
    assert np.isnan(out[0]).all() and np.isnan(out[5]).all()
    for k, crop in enumerate(crops):
        reference = exact_reference(np.ascontiguousarray(crop), contract, "BGR")
        assert np.abs(out[1 + k] - reference).max() <= MAX_ERR


def test_another_contract_size_order_and_normalization(lib, rng):
    contract = Preprocessing(height=160, width=96, color_order="BGR", mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    image = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    for order in ("RGB", "BGR"):
        out = lib.preprocess([image], order, contract)
        assert out.shape == (1, 3, 160, 96)
        assert np.abs(out[0] - to_network_input(image, contract, order)).max() <= MAX_ERR


def test_results_do_not_depend_on_the_thread_count(lib, rng):
    contract = Preprocessing()
    images = [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in [(480, 640), (31, 77), (720, 1280)]]
    one = lib.preprocess(images, "RGB", contract, threads=1)
    for threads in (2, 3, None):
        np.testing.assert_array_equal(lib.preprocess(images, "RGB", contract, threads=threads), one)


def test_an_empty_batch_is_a_no_op(lib):
    out = np.zeros((2, 3, 224, 224), np.float32)
    lib.preprocess([], "RGB", Preprocessing(), out)
    assert not out.any()


@pytest.mark.parametrize(
    "make_image, reason",
    [
        (lambda: np.zeros((8, 8, 3), np.float32), "uint8"),
        (lambda: np.zeros((8, 8), np.uint8), r"\(H, W, 3\)"),
        (lambda: np.zeros((8, 8, 4), np.uint8), r"\(H, W, 3\)"),
        (lambda: np.zeros((8, 8, 3), np.uint8)[:, :, ::-1], "pixels must be packed"),
        (lambda: np.zeros((8, 16, 3), np.uint8)[:, ::2], "pixels must be packed"),
        (lambda: np.zeros((0, 8, 3), np.uint8), "1..32767"),
    ],
)
def test_bad_images_are_refused_with_the_reason(lib, make_image, reason):
    with pytest.raises(FakeLocatorError, match=f"image 0.*{reason}"):
        lib.preprocess([make_image()], "RGB", Preprocessing())


@pytest.mark.parametrize(
    "out, reason",
    [
        (np.zeros((1, 3, 224, 224), np.float64), "float32 or float16"),
        (np.zeros((1, 3, 224, 225), np.float32), r"shape \(N, 3, 224, 224\)"),
        (np.zeros((1, 224, 224, 3), np.float32), r"shape \(N, 3, 224, 224\)"),
        (np.zeros((1, 3, 224, 448), np.float32)[..., ::2], "C-contiguous"),
    ],
)
def test_bad_outputs_are_refused_with_the_reason(lib, out, reason):
    with pytest.raises(FakeLocatorError, match=reason):
        lib.preprocess([np.zeros((8, 8, 3), np.uint8)], "RGB", Preprocessing(), out)


def test_a_batch_that_does_not_fit_the_output_is_refused(lib):
    images = [np.zeros((8, 8, 3), np.uint8)] * 2
    with pytest.raises(FakeLocatorError, match="do not fit"):
        lib.preprocess(images, "RGB", Preprocessing(), np.zeros((2, 3, 224, 224), np.float32), start=1)


def test_an_unknown_color_order_is_refused(lib):
    with pytest.raises(FakeLocatorError, match="color_order"):
        lib.preprocess([np.zeros((8, 8, 3), np.uint8)], "GRB", Preprocessing())
