"""Native upsampling reproduces fakelocator.contract.to_full_resolution; the fused overlay follows
the runtime's overlay formula exactly.

Measured on the dev machine: upsampling is within 1.8e-7 of the contract (maps in [0, 1]).
"""

import numpy as np
import pytest

from fakelocator.contract import to_full_resolution
from fakelocator.errors import FakeLocatorError


def overlay_reference(image_bgr: np.ndarray, map_full: np.ndarray, alpha, lut: np.ndarray) -> np.ndarray:
    """The overlay formula, in float32: level = floor(clip(m, 0, 1) * 255 + 0.5), NaN → 0;
    a = alpha (one number) or alpha[level] (a 256-entry opacity table);
    out = floor(a * lut[level] + (1 - a) * image + 0.5)."""
    m = np.nan_to_num(np.clip(map_full, 0, 1), nan=0.0)
    level = np.floor(m * np.float32(255) + np.float32(0.5)).astype(np.uint8)
    table = np.asarray(alpha, np.float32)
    a = table[level][..., None] if table.ndim else table
    blended = a * lut[level].astype(np.float32) + (np.float32(1) - a) * image_bgr.astype(np.float32)
    return np.floor(blended + np.float32(0.5)).astype(np.uint8)


@pytest.mark.parametrize(
    "map_size, size",
    [((224, 224), (1080, 1920)), ((224, 224), (1, 1)), ((7, 9), (500, 3)), ((224, 224), (100, 100)), ((56, 56), (56, 56)), ((1, 1), (13, 17))],
    ids=str,
)
def test_upsampling_matches_the_contract_and_clips(lib, rng, map_size, size):
    small = rng.uniform(-0.2, 1.2, size=map_size).astype(np.float32)
    full = lib.upsample(small, *size)
    assert full.shape == size and full.dtype == np.float32
    assert full.min() >= 0 and full.max() <= 1
    assert np.abs(full - to_full_resolution(small, *size)).max() <= 1e-6


def test_a_map_with_a_row_pitch_and_a_given_output(lib, rng):
    padded = rng.uniform(0, 1, size=(56, 80)).astype(np.float32)
    small = padded[:, 3:59]  # (56, 56) rows 80 floats apart
    out = np.empty((300, 200), np.float32)
    assert lib.upsample(small, 300, 200, out=out) is out
    assert np.abs(out - to_full_resolution(np.ascontiguousarray(small), 300, 200)).max() <= 1e-6


def test_nan_stays_nan_in_the_map_and_gets_the_lowest_colour_in_the_overlay(lib, jet_lut):
    small = np.full((4, 4), np.nan, np.float32)
    image = np.full((8, 8, 3), 100, np.uint8)
    full = np.empty((8, 8), np.float32)
    out = lib.overlay(image, small, 0.5, jet_lut, map_out=full)
    assert np.isnan(full).all()
    np.testing.assert_array_equal(out, overlay_reference(image, np.zeros((8, 8), np.float32), 0.5, jet_lut))


@pytest.mark.parametrize("alpha", [0.5, 0.3, 0.0, 1.0, 0.77])
def test_overlay_follows_the_formula_on_the_upsampled_map(lib, rng, jet_lut, alpha):
    image = rng.integers(0, 256, size=(333, 517, 3), dtype=np.uint8)
    small = rng.uniform(-0.1, 1.1, size=(224, 224)).astype(np.float32)
    full = np.empty((333, 517), np.float32)
    out = lib.overlay(image, small, alpha, jet_lut, map_out=full)
    np.testing.assert_array_equal(out, overlay_reference(image, full, alpha, jet_lut))
    # Against the OpenCV-upsampled map, only pixels whose level sits on a rounding edge may differ.
    reference_map = to_full_resolution(small, 333, 517)
    ours = np.floor(full * np.float32(255) + np.float32(0.5))
    theirs = np.floor(reference_map * np.float32(255) + np.float32(0.5))
    assert np.abs(ours - theirs).max() <= 1
    same_level = ours == theirs
    np.testing.assert_array_equal(out[same_level], overlay_reference(image, reference_map, alpha, jet_lut)[same_level])


def test_an_opacity_table_gives_the_runtime_overlay_bit_for_bit(lib, rng):
    from fakelocator.runtime.overlay import colormap_lut, opacity_table, overlay

    image = rng.integers(0, 256, size=(97, 143, 3), dtype=np.uint8)
    small = rng.uniform(-0.1, 1.1, size=(56, 56)).astype(np.float32)
    full = np.empty((97, 143), np.float32)
    table, lut = opacity_table(0.6, (0.1, 0.6)), colormap_lut("inferno")
    out = lib.overlay(image, small, table, lut, map_out=full)
    np.testing.assert_array_equal(out, overlay_reference(image, full, table, lut))
    np.testing.assert_array_equal(out, overlay(image, full, 0.6, ramp=(0.1, 0.6), colormap="inferno"))
    transparent = full < 0.1 - 0.5 / 255  # levels whose opacity is 0
    assert transparent.any() and np.array_equal(out[transparent], image[transparent])


def test_overlay_without_the_map_is_the_same_overlay(lib, rng, jet_lut):
    image = rng.integers(0, 256, size=(120, 90, 3), dtype=np.uint8)
    small = rng.uniform(0, 1, size=(32, 32)).astype(np.float32)
    with_map = lib.overlay(image, small, 0.4, jet_lut, map_out=np.empty((120, 90), np.float32))
    np.testing.assert_array_equal(lib.overlay(image, small, 0.4, jet_lut), with_map)


def test_a_batch_of_network_maps_goes_back_to_each_image_size(lib, rng, jet_lut):
    maps = rng.uniform(0, 1, size=(3, 1, 64, 64)).astype(np.float32)  # a network's (N, 1, h, w) output
    frame = rng.integers(0, 256, size=(400, 600, 3), dtype=np.uint8)
    images = [frame, frame[50:150, 100:400], rng.integers(0, 256, size=(31, 7, 3), dtype=np.uint8)]
    full, overlays = lib.postprocess(maps, images=images, alpha=0.5, lut=jet_lut)
    for m, image, f, o in zip(maps, images, full, overlays):
        assert f.shape == image.shape[:2] and o.shape == image.shape
        assert np.abs(f - to_full_resolution(m[0], *image.shape[:2])).max() <= 1e-6
        np.testing.assert_array_equal(o, overlay_reference(image, f, 0.5, jet_lut))
    only_maps, no_overlays = lib.postprocess(maps, [image.shape[:2] for image in images])
    assert no_overlays is None
    for a, b in zip(only_maps, full):
        np.testing.assert_array_equal(a, b)


def test_results_do_not_depend_on_the_thread_count(lib, rng, jet_lut):
    maps = rng.uniform(0, 1, size=(2, 1, 56, 56)).astype(np.float32)
    images = [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in [(300, 500), (97, 33)]]
    one = lib.postprocess(maps, images=images, lut=jet_lut, threads=1)
    for threads in (2, 5, None):
        other = lib.postprocess(maps, images=images, lut=jet_lut, threads=threads)
        for a, b in zip(one[0] + one[1], other[0] + other[1]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"lut": None}, "colour table"),
        ({"lut": np.zeros((256, 4), np.uint8)}, "256 x 3 uint8"),
        ({"alpha": 1.5}, r"alpha must be in \[0, 1\]"),
        ({"alpha": np.full(255, 0.5, np.float32)}, "256 values"),
        ({"alpha": np.r_[np.zeros(255), 1.01]}, r"opacity table's values must be in \[0, 1\]"),
        ({"images": [np.zeros((8, 8, 3), np.float32)]}, "image 0 must be a uint8"),
        ({"images": [np.zeros((8, 8, 3), np.uint8)] * 2}, "1 maps but 2 images"),
        ({"overlays_out": [np.zeros((8, 8, 3), np.float32)]}, "overlay output 0"),
        ({"maps_out": [np.zeros((9, 8), np.float32)]}, "map output 0"),
        ({"levels_out": [np.zeros((8, 8), np.float32)]}, "levels output 0"),
        ({"levels_out": []}, "levels_out has 0 arrays"),
    ],
)
def test_bad_postprocess_arguments_are_refused_with_the_reason(lib, jet_lut, kwargs, reason):
    args = {"images": [np.zeros((8, 8, 3), np.uint8)], "lut": jet_lut, "alpha": 0.5} | kwargs
    with pytest.raises(FakeLocatorError, match=reason):
        lib.postprocess([np.zeros((4, 4), np.float32)], **args)


@pytest.mark.parametrize(
    "small, reason",
    [
        (np.zeros((4, 4), np.float64), "float32"),
        (np.zeros((4, 4, 1), np.float32), r"\(h, w\)"),
        (np.zeros((4, 8), np.float32)[:, ::2], "rows must be packed"),
    ],
)
def test_bad_maps_are_refused_with_the_reason(lib, small, reason):
    with pytest.raises(FakeLocatorError, match=f"map 0.*{reason}"):
        lib.upsample(small, 8, 8)


def test_an_output_size_beyond_the_limit_is_refused(lib):
    with pytest.raises(FakeLocatorError, match="1..32767"):
        lib.upsample(np.zeros((4, 4), np.float32), 40000, 8)


@pytest.mark.parametrize("map_size, size", [((224, 224), (1080, 1920)), ((1, 1), (5, 7)), ((28, 28), (3840, 2160))])
def test_uint8_levels_are_the_float_maps_levels(lib, rng, map_size, size):
    """The uint8 path (no float32 full-resolution map) gives the levels of the float32 path exactly, and is
    within one level of the contract's OpenCV upsampling quantized the same way (encode_map's rule)."""
    from fakelocator.runtime.levels import map_levels

    small = rng.uniform(-0.2, 1.2, map_size).astype(np.float32)
    small.flat[0] = np.nan
    reused = np.full(size, 7, np.uint8)
    levels = lib.upsample_u8(small, *size, out=reused)
    assert levels is reused
    np.testing.assert_array_equal(levels, map_levels(lib.upsample(small, *size)))
    assert np.abs(levels.astype(np.int16) - map_levels(to_full_resolution(small, *size))).max() <= 1


def test_levels_come_with_maps_and_overlays_in_one_pass(lib, rng, jet_lut):
    small = rng.random((2, 1, 16, 16), dtype=np.float32)
    images = [rng.integers(0, 256, (40, 30, 3), dtype=np.uint8) for _ in range(2)]
    levels = [np.empty((40, 30), np.uint8) for _ in range(2)]
    maps, overlays = lib.postprocess(small, images=images, lut=jet_lut, levels_out=levels)
    for m, lv, o, i in zip(maps, levels, overlays, range(2)):
        np.testing.assert_array_equal(lv, np.floor(m * np.float32(255) + np.float32(0.5)).astype(np.uint8))
        np.testing.assert_array_equal(o, lib.overlay(images[i], small[i, 0], 0.5, jet_lut))
