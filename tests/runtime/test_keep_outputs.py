"""``keep_outputs=True``: a result carries the network's own outputs (map at network resolution, features)."""

from __future__ import annotations

import numpy as np

from fakelocator.contract import to_network_input
from fakelocator.runtime import Locator


def test_outputs_are_the_backends_for_that_image(locator, red_square, contract):
    images = [red_square(50, 70, (5, 5, 30, 40)), np.full((20, 90, 3), 128, np.uint8), red_square(32, 32, (0, 0, 32, 32))]
    results = locator.locate(images, keep_outputs=True)
    x = np.stack([to_network_input(im, contract, "BGR") for im in images])  # (3, 3, 32, 32)
    direct = locator.backend.infer(x)
    for i, r in enumerate(results):
        assert r.outputs["map"].shape == contract.size
        np.testing.assert_allclose(r.outputs["map"], direct["map"][i, 0], atol=1e-6)
        np.testing.assert_allclose(r.outputs["features"], direct["features"][i], atol=1e-6)
        # the red model's features are the channel means of the network input
        np.testing.assert_allclose(r.outputs["features"], x[i].mean(axis=(1, 2)), atol=1e-5)


def test_outputs_are_not_kept_by_default(locator):
    assert locator.locate(np.zeros((10, 10, 3), np.uint8)).outputs is None


def test_outputs_are_not_kept_for_region_crops(red_model):
    with Locator.load(red_model, device="cpu", regions=lambda *a: [(0, 0, 8, 8)]) as loc:
        r = loc.locate(np.zeros((16, 16, 3), np.uint8), keep_outputs=True)
    assert r.outputs is None and r.map.shape == (16, 16)
