"""The CUDA kernels, run on the CPU by native/src/emulate.cpp, give the CPU implementation's bits.

This checks the kernels' indexing, the splitting of a call into launches (64 images, 16 maps per
launch), row pitches, batch offsets and the descriptors that fakelocator.runtime.native builds,
on machines without a GPU. It says nothing about real GPUs (memory model, speed): those are
test_cuda_kernels.py's, which needs one. "Device" pointers here are host addresses.
"""

import sys

import numpy as np
import pytest

from fakelocator.contract import Preprocessing
from fakelocator.runtime import native
from fakelocator.runtime.native import DeviceImage

pytestmark = [
    pytest.mark.slow,  # shares the second build with test_loading.py
    pytest.mark.skipif(sys.platform != "linux", reason="the kernel emulator uses ucontext (Linux)"),
]


@pytest.fixture(scope="module")
def emulated(cpu_only_build):
    path = cpu_only_build / "libfakelocator_native_emulated.so"
    if not path.is_file():
        pytest.skip(f"the emulation library was not built in {cpu_only_build}")
    return native.NativeLibrary(path)


def pitched(rng, sizes, pad):
    """(buffers with rows `pad` bytes longer than 3 * width, the (H, W, 3) views of them)."""
    buffers = [rng.integers(0, 256, size=(h, 3 * w + pad), dtype=np.uint8) for h, w in sizes]
    return buffers, [b[:, : 3 * w].reshape(h, w, 3) for b, (h, w) in zip(buffers, sizes)]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_preprocess_kernel_equals_the_cpu(emulated, lib, rng, dtype):
    contract = Preprocessing(height=24, width=20)
    sizes = [(1, 1), (37, 50), (24, 20), (300, 3), (2, 400)] + [(13, 9)] * 66  # two launches
    buffers, views = pitched(rng, sizes, pad=7)
    out = np.full((len(sizes) + 2, 3, 24, 20), 7, dtype)
    images = [DeviceImage(b.ctypes.data, h, w, pitch=b.shape[1]) for b, (h, w) in zip(buffers, sizes)]
    emulated.preprocess_device(images, "BGR", contract, out.ctypes.data, dtype=dtype, start=2)
    assert (out[:2] == 7).all()
    expected = lib.preprocess(views, "BGR", contract, np.empty((len(sizes), 3, 24, 20), dtype))
    np.testing.assert_array_equal(out[2:], expected)


def test_float16_rounding_of_subnormals_and_overflow_matches(emulated, lib):
    image = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3) * 3
    for std in (1e4, 1e-5):  # outputs below 1e-4 (half subnormals), up to 1e5 (beyond half)
        contract = Preprocessing(height=8, width=8, mean=(0, 0, 0), std=(std, std, std))
        out = np.empty((1, 3, 8, 8), np.float16)
        emulated.preprocess_device([DeviceImage(image.ctypes.data, 8, 8)], "RGB", contract, out.ctypes.data, dtype=np.float16)
        np.testing.assert_array_equal(out, lib.preprocess([image], "RGB", contract, np.empty((1, 3, 8, 8), np.float16)))


@pytest.mark.parametrize("alpha", ["scalar", "table"])
def test_postprocess_kernel_equals_the_cpu(emulated, lib, rng, jet_lut, alpha):
    from fakelocator.runtime.overlay import opacity_table

    alpha = 0.3 if alpha == "scalar" else opacity_table(0.7, (0.2, 0.5))
    sizes = [(130, 200), (1, 1), (5, 300), (300, 5)] + [(17, 11)] * 17  # two launches
    maps = rng.uniform(-0.1, 1.1, size=(len(sizes), 1, 28, 28)).astype(np.float32)
    maps[0, 0, :2, :2] = np.nan
    buffers, views = pitched(rng, sizes, pad=5)
    full = [np.empty(s, np.float32) for s in sizes]
    overlays = [np.empty((*s, 3), np.uint8) for s in sizes]
    emulated.postprocess_device(
        maps.ctypes.data,
        (28, 28),
        sizes,
        maps_out=[f.ctypes.data for f in full],
        images=[DeviceImage(b.ctypes.data, h, w, pitch=b.shape[1]) for b, (h, w) in zip(buffers, sizes)],
        overlays_out=[o.ctypes.data for o in overlays],
        alpha=alpha,
        lut=jet_lut,
    )
    cpu_full, cpu_overlays = lib.postprocess(maps, images=views, alpha=alpha, lut=jet_lut)
    for ours, theirs in zip(full, cpu_full):
        np.testing.assert_array_equal(ours, theirs)
    for ours, theirs in zip(overlays, cpu_overlays):
        np.testing.assert_array_equal(ours, theirs)


def test_upsample_kernel_alone_equals_the_cpu(emulated, lib, rng):
    maps = rng.uniform(0, 1, size=(3, 1, 7, 9)).astype(np.float32)
    full = [np.empty((70, 45), np.float32) for _ in range(3)]
    emulated.upsample_device(maps.ctypes.data, (7, 9), [(70, 45)] * 3, [f.ctypes.data for f in full])
    for f, m in zip(full, maps):
        np.testing.assert_array_equal(f, lib.upsample(m[0], 70, 45))


# --- native analysis: tiles and stitching -------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_tiles_kernel_equals_the_cpu(emulated, lib, rng, dtype):
    # 16 x 12 tiles, overlap 3: images smaller than a tile (mirrored), larger, and enough tiles
    # (17 + 14 x 4 = 73) for two 64-tile launches.
    contract = Preprocessing(height=16, width=12, analysis="native", tile_overlap=3)
    sizes = [(1, 1), (40, 33), (5, 30), (16, 12)] + [(20, 14)] * 14
    buffers, views = pitched(rng, sizes, pad=7)
    images = [DeviceImage(b.ctypes.data, h, w, pitch=b.shape[1]) for b, (h, w) in zip(buffers, sizes)]
    counts = [lib.tile_count(h, w, (16, 12), 3) for h, w in sizes]
    assert sum(counts) > 64
    out = np.full((sum(counts) + 2, 3, 16, 12), 7, dtype)
    assert emulated.tiles_device(images, "BGR", contract, out.ctypes.data, dtype=dtype, start=2) == counts
    assert (out[:2] == 7).all()
    expected = lib.tiles(views, "BGR", contract, np.empty((sum(counts), 3, 16, 12), dtype))
    np.testing.assert_array_equal(out[2:], expected)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_stitch_kernel_equals_the_cpu(emulated, lib, rng, dtype):
    # 17 images (two 16-item launches); tiles 16 x 12, overlap 5; a NaN in one map.
    sizes = [(40, 33), (1, 1), (16, 12), (17, 13), (9, 70)] + [(30, 20)] * 12
    counts = [lib.tile_count(h, w, (16, 12), 5) for h, w in sizes]
    maps = rng.uniform(-0.1, 1.1, (sum(counts) + 1, 1, 16, 12)).astype(np.float32)
    maps[3, 0, 2, 2] = np.nan
    firsts = list(np.cumsum([1] + counts[:-1]))  # the batch starts with a tile of no one's
    outs = [np.full(s, 3, dtype) for s in sizes]
    emulated.stitch_device(maps.ctypes.data, (16, 12), sizes, 5, [o.ctypes.data for o in outs], first_tiles=firsts, dtype=dtype)
    for o, first, count, size in zip(outs, firsts, counts, sizes):
        np.testing.assert_array_equal(o, lib.stitch(maps[first:first + count], size, 5, dtype=dtype))


def test_levels_kernel_equals_the_cpu(emulated, lib, rng):
    maps = rng.uniform(-0.1, 1.1, size=(17, 1, 7, 9)).astype(np.float32)  # two launches
    maps[0, 0, 0, 0] = np.nan
    levels = [np.full((30, 21), 3, np.uint8) for _ in range(17)]
    emulated.postprocess_device(maps.ctypes.data, (7, 9), [(30, 21)] * 17, levels_out=[lv.ctypes.data for lv in levels])
    for lv, m in zip(levels, maps):
        np.testing.assert_array_equal(lv, lib.upsample_u8(m[0], 30, 21))
