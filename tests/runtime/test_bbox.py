"""``bbox``: the box of the map at or above the model's decision threshold, None when no pixel is.

A box at a low fixed level (it was 0.1) boxed the whole image whenever a model's map has a floor
above that level, as the shipped model's does (real images peak around 0.35): it told nothing.
"""

import numpy as np

from fakelocator.runtime.results import BBOX_LEVEL, bbox_of
from fakelocator.runtime import Locator


def test_bbox_of_boxes_the_pixels_at_or_above_the_level():
    m = np.full((40, 60), 0.35, np.float32)  # a floor under the threshold, everywhere
    m[10:20, 30:45] = 0.8
    m[25, 5] = 0.5  # at the level counts
    assert bbox_of(m, 0.5) == (5, 10, 45, 26)
    assert bbox_of(m, 0.9) is None
    assert bbox_of(m, 0.3) == (0, 0, 60, 40)  # a level under the floor: the whole image


def test_the_default_level_is_the_default_decision_threshold():
    from fakelocator.metadata import DEFAULT_THRESHOLD

    assert BBOX_LEVEL == DEFAULT_THRESHOLD


def test_the_locator_boxes_at_its_threshold(red_model, red_square):
    image = red_square(160, 200, (60, 40, 140, 100))
    with Locator.load(red_model, backend="onnxruntime", device="cpu", workers=1, threads=1) as at_half:
        r = at_half.locate(image)
        assert at_half.bbox_level == at_half.threshold == 0.5
        x0, y0, x1, y1 = r.bbox
        assert (r.map[y0:y1, x0:x1] >= 0.5).any() and r.map[:y0].max(initial=0) < 0.5 and r.map[y1:].max(initial=0) < 0.5
    with Locator.load(red_model, backend="onnxruntime", device="cpu", workers=1, threads=1, threshold=0.999) as strict:
        r = strict.locate(image)
        assert r.bbox is None or (r.map >= 0.999).any()
        assert r.bbox is None if r.map.max() < 0.999 else r.bbox is not None
