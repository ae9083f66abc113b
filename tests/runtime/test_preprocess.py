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
