"""One rule from a map to its 8-bit levels (fakelocator.runtime.levels), and the uint8 path that
writes them without a float32 full-resolution map: every writer of levels gives the same bytes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fakelocator.runtime.levels import map_levels
from fakelocator.runtime.outputs import encode_map
from fakelocator.runtime.overlay import blend_levels, colormap_lut, opacity_table, overlay
from fakelocator.runtime.results import bbox_of
from fakelocator.runtime.triton_models import encode_maps

#: Every exact half level k + 0.5 (in float32), its neighbours, the ends, and what is out of range.
HALVES = np.array([(k + 0.5) / 255 for k in range(255)], np.float32)
EDGES = np.array([0.0, 1.0, -0.2, 1.7, np.nan, np.inf, -np.inf, 1 / 255, 254.4999 / 255], np.float32)


def test_half_levels_round_up_and_nan_is_zero():
    assert map_levels(np.float32([0.5 / 255, 2.5 / 255])).tolist() == [1, 3]  # numpy's round gives 0 and 2
    assert map_levels(EDGES).tolist() == [0, 255, 0, 255, 0, 255, 0, 1, 254]
    assert map_levels(HALVES).tolist() == list(range(1, 256))
    assert map_levels(HALVES.astype(np.float64)).tolist() == list(range(1, 256))  # the rule is float32's
    assert map_levels(np.float32([0.5, 1.0]), depth=16).tolist() == [32768, 65535]


def half_level_maps(rng) -> list[np.ndarray]:
    ramp = np.concatenate([HALVES, EDGES]).reshape(8, 33)
    noisy = rng.integers(0, 255, (31, 47)).astype(np.float32) + np.float32(0.5)
    return [ramp, noisy / np.float32(255), np.full((3, 5), np.float32(127.5 / 255))]


def test_png_maps_triton_maps_and_overlays_use_the_same_levels(rng):
    maps = half_level_maps(rng)
    served = encode_maps(maps, "uint8")
    for i, m in enumerate(maps):
        png = cv2.imdecode(np.frombuffer(encode_map(m, 8), np.uint8), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(png, map_levels(m))
        np.testing.assert_array_equal(served[i, :m.shape[0], :m.shape[1]], png)
        assert encode_map(map_levels(m), 8) == encode_map(m, 8)  # levels in, the same PNG out
        image = rng.integers(0, 256, (*m.shape, 3), dtype=np.uint8)
        np.testing.assert_array_equal(overlay(image, m), overlay(image, map_levels(m)))
        np.testing.assert_array_equal(overlay(image, m), blend_levels(image, png, colormap_lut(), opacity_table()))


@pytest.mark.parametrize("level", [0.5, 0.1])  # the default (0.5) and a low level: both x 255 end in .5
def test_bbox_of_levels_is_the_bbox_of_the_map(level):
    m = np.zeros((20, 30), np.float32)
    m[3:9, 4:7] = level  # the level itself is in the box
    m[12, 20] = np.float32(level - 1e-4)  # just below it is not, in levels too
    assert bbox_of(m, level) == bbox_of(map_levels(m), level) == (4, 3, 7, 9)
    if level == 0.5:
        assert bbox_of(m) == (4, 3, 7, 9)


@pytest.mark.parametrize("analysis", ["fit", "native"])
@pytest.mark.parametrize("preprocessor", ["numpy", "native"])
def test_the_uint8_writer_writes_the_float_writers_bytes(red_model, tmp_path, rng, analysis, preprocessor):
    """trt-locate's 8-bit maps and overlays: stitched/upsampled straight to levels (map_levels=True)
    or from float32 maps quantized at encoding (False) are the same files."""
    from fakelocator.runtime import Locator
    from fakelocator.runtime.outputs import Journal, Layout
    from fakelocator.runtime.inputs import expand
    from fakelocator.runtime.run import RunOptions, run

    if preprocessor == "native":
        from fakelocator.runtime import native

        if native.load() is None:
            pytest.skip("the native library is not built")
    for k, (h, w) in enumerate([(70, 90), (33, 20), (128, 96)]):
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        image[h // 4: h // 2, w // 3: w // 2, 2] = 255  # a red patch the red model maps
        cv2.imwrite(str(tmp_path / f"in{k}.png"), image)
    written = {}
    for levels in (True, False):
        out = tmp_path / f"out-{levels}"
        with Locator.load(red_model, device="cpu", preprocessor=preprocessor, analysis=analysis,
                          tile_overlap=8 if analysis == "native" else None, batch_size=3) as locator:
            layout = Layout(out)
            journal = Journal(layout.results, resume=False, overwrite=False)
            try:
                stats = run(locator, expand([str(tmp_path / "in*.png")]), layout, journal,
                            RunOptions(overlay=True, writers=2, map_levels=levels))
            finally:
                journal.close()
        assert stats.ok == 3
        written[levels] = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.*g"))}
    assert len(written[True]) == 6 and written[True] == written[False]
