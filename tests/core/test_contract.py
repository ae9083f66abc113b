import json

import numpy as np
import pytest

from fakelocator.contract import Preprocessing, resize_bilinear, to_full_resolution, to_network_input
from fakelocator.errors import FakeLocatorError


def _bilinear_reference(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """The documented rule, written out in float64: half-pixel centres, clamped at the edges."""
    in_h, in_w = img.shape[:2]
    ys = np.clip((np.arange(out_h) + 0.5) * in_h / out_h - 0.5, 0, in_h - 1)
    xs = np.clip((np.arange(out_w) + 0.5) * in_w / out_w - 0.5, 0, in_w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, in_h - 1), np.minimum(x0 + 1, in_w - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    img = img.astype(np.float64).reshape(in_h, in_w, -1)
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bottom = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


@pytest.mark.parametrize("in_hw,out_hw", [((1080, 1920), (224, 224)), ((37, 500), (224, 224)), ((224, 224), (31, 77)), ((5, 3), (224, 224)), ((1, 300), (224, 224)), ((300, 1), (64, 64))])
def test_resize_follows_the_documented_bilinear_rule(rng, in_hw, out_hw):
    img = rng.integers(0, 256, size=(*in_hw, 3), dtype=np.uint8)
    ours = resize_bilinear(img, *out_hw)
    ref = _bilinear_reference(img, *out_hw)
    assert ours.dtype == np.float32 and ours.shape == (*out_hw, 3)
    np.testing.assert_allclose(ours, ref, atol=2e-4)  # float32 weights and arithmetic on 0..255 values


@pytest.mark.parametrize("shape", [(224, 224), (225, 223), (333, 517), (1080, 1920)])
def test_resize_agrees_with_opencv_inter_linear_on_float_images(rng, shape):
    import cv2

    image = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    ref = cv2.resize(image.astype(np.float32), (224, 224), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(resize_bilinear(image, 224, 224), ref, atol=0.05)


def test_resize_keeps_two_dimensional_maps_two_dimensional(rng):
    m = rng.random((50, 70), dtype=np.float32)
    assert resize_bilinear(m, 20, 30).shape == (20, 30)
    np.testing.assert_allclose(resize_bilinear(m, 20, 30), _bilinear_reference(m, 20, 30)[:, :, 0], atol=1e-6)


def test_full_resolution_maps_stay_within_2e_5_of_the_rule(rng):
    small = rng.random((224, 224), dtype=np.float32)
    np.testing.assert_allclose(to_full_resolution(small, 1080, 1920), _bilinear_reference(small, 1080, 1920)[:, :, 0], atol=2e-5)


def test_network_input_is_normalized_nchw_in_the_contract_color_order(rng):
    contract = Preprocessing(height=32, width=48)
    bgr = rng.integers(0, 256, size=(64, 96, 3), dtype=np.uint8)
    x = to_network_input(bgr, contract, color_order="BGR")
    assert x.shape == (3, 32, 48) and x.dtype == np.float32
    rgb = resize_bilinear(bgr[:, :, ::-1], 32, 48) / 255.0
    expected = (rgb - np.array(contract.mean)) / np.array(contract.std)
    np.testing.assert_allclose(x, expected.transpose(2, 0, 1), atol=1e-5)
    np.testing.assert_allclose(to_network_input(bgr[:, :, ::-1].copy(), contract, color_order="RGB"), x, atol=1e-6)


def test_maps_return_to_full_resolution_clipped_to_unit_range(rng):
    small = rng.uniform(-0.2, 1.2, size=(224, 224)).astype(np.float32)
    full = to_full_resolution(small, 1080, 1920)
    assert full.shape == (1080, 1920) and full.dtype == np.float32
    assert full.min() >= 0 and full.max() <= 1


def test_contract_round_trips_through_json():
    c = Preprocessing(height=256, width=192, color_order="BGR", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert Preprocessing.from_json(c.to_json()) == c
    assert json.loads(c.to_json())["height"] == 256


@pytest.mark.parametrize("bad", [{"color_order": "RGBA"}, {"std": (0, 1, 1)}, {"resize": "nearest"}, {"height": 4}])
def test_invalid_contracts_are_refused_with_the_reason(bad):
    with pytest.raises(FakeLocatorError, match="invalid preprocessing contract"):
        Preprocessing(**bad)


def test_a_contract_from_a_newer_version_is_refused():
    d = Preprocessing().to_dict() | {"letterbox": True}
    with pytest.raises(FakeLocatorError, match="unknown fields"):
        Preprocessing.from_dict(d)


def test_network_input_rejects_non_uint8_color_images():
    with pytest.raises(FakeLocatorError, match="uint8"):
        to_network_input(np.zeros((8, 8), np.uint8), Preprocessing(), color_order="RGB")
