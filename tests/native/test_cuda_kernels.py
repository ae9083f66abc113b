"""The CUDA kernels give the same bits as the CPU implementation (they share common.h's arithmetic).

Needs an NVIDIA GPU; skipped elsewhere. Never run on the development machine (no GPU there).
"""

import numpy as np
import pytest

from fakelocator.contract import Preprocessing
from fakelocator.runtime import cuda
from fakelocator.runtime.native import DeviceImage
from helpers.native_build import cuda_device_count

pytestmark = pytest.mark.needs_cuda


@pytest.fixture(scope="module")
def gpu_lib(lib):
    if not lib.has_cuda:
        pytest.skip(f"{lib.path} was built without CUDA (nvcc missing when it was configured)")
    return lib


@pytest.fixture
def stream():
    with cuda.Stream() as s:
        yield s


def upload(array: np.ndarray, stream) -> cuda.DeviceBuffer:
    buffer = cuda.DeviceBuffer(array.nbytes)
    buffer.copy_from_host(np.ascontiguousarray(array), stream)
    return buffer


def frames_with_pitch(rng, sizes, pitch_pad=13):
    """uint8 images whose rows are ``pitch_pad`` bytes longer than 3 * width, as crops would be."""
    padded = [rng.integers(0, 256, size=(h, 3 * w + pitch_pad), dtype=np.uint8) for h, w in sizes]
    return padded, [p[:, : 3 * w].reshape(h, w, 3) for p, (h, w) in zip(padded, sizes)]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_preprocess_on_the_gpu_equals_the_cpu(gpu_lib, rng, stream, dtype):
    contract = Preprocessing()
    sizes = [(1080, 1920), (1, 1), (37, 500), (224, 224), (4000, 3), (2, 4000)] + [(31, 17)] * 64  # > one 64-image launch
    padded, views = frames_with_pitch(rng, sizes)
    buffers = [upload(p, stream) for p in padded]
    images = [DeviceImage(b.ptr, h, w, pitch=p.shape[1]) for b, p, (h, w) in zip(buffers, padded, sizes)]
    n = len(sizes) + 2
    out = cuda.DeviceBuffer(n * 3 * 224 * 224 * np.dtype(dtype).itemsize)
    gpu_lib.preprocess_device(images, "BGR", contract, out.ptr, dtype=dtype, start=2, stream=stream)
    result = out.copy_to_host(np.empty((n, 3, 224, 224), dtype), stream)
    stream.synchronize()
    expected = gpu_lib.preprocess(views, "BGR", contract, np.empty((len(sizes), 3, 224, 224), dtype))
    np.testing.assert_array_equal(result[2:], expected)
    for b in buffers + [out]:
        b.close()


@pytest.mark.parametrize("alpha", ["scalar", "table"])
def test_postprocess_on_the_gpu_equals_the_cpu(gpu_lib, rng, stream, jet_lut, alpha):
    from fakelocator.runtime.overlay import opacity_table

    alpha = 0.3 if alpha == "scalar" else opacity_table(0.7, (0.2, 0.5))
    sizes = [(1080, 1920), (1, 1), (500, 3), (224, 224)] + [(40, 30)] * 16  # > one 16-map launch
    maps = rng.uniform(-0.1, 1.1, size=(len(sizes), 1, 224, 224)).astype(np.float32)
    maps[0, 0, :3, :3] = np.nan
    padded, views = frames_with_pitch(rng, sizes, pitch_pad=5)
    d_maps = upload(maps, stream)
    d_images = [upload(p, stream) for p in padded]
    d_full = [cuda.DeviceBuffer(h * w * 4) for h, w in sizes]
    d_over = [cuda.DeviceBuffer(h * w * 3) for h, w in sizes]
    gpu_lib.postprocess_device(
        d_maps.ptr,
        (224, 224),
        sizes,
        maps_out=[b.ptr for b in d_full],
        images=[DeviceImage(b.ptr, h, w, pitch=p.shape[1]) for b, p, (h, w) in zip(d_images, padded, sizes)],
        overlays_out=[b.ptr for b in d_over],
        alpha=alpha,
        lut=jet_lut,
        stream=stream,
    )
    full = [b.copy_to_host(np.empty((h, w), np.float32), stream) for b, (h, w) in zip(d_full, sizes)]
    over = [b.copy_to_host(np.empty((h, w, 3), np.uint8), stream) for b, (h, w) in zip(d_over, sizes)]
    stream.synchronize()
    cpu_full, cpu_over = gpu_lib.postprocess(maps, images=views, alpha=alpha, lut=jet_lut)
    for a, b in zip(full, cpu_full):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(over, cpu_over):
        np.testing.assert_array_equal(a, b)


def test_upsample_only_on_the_default_stream(gpu_lib, rng):
    small = rng.uniform(0, 1, size=(2, 1, 56, 56)).astype(np.float32)
    d_maps = upload(small, None)
    outs = [cuda.DeviceBuffer(300 * 200 * 4) for _ in range(2)]
    gpu_lib.upsample_device(d_maps.ptr, (56, 56), [(300, 200)] * 2, [o.ptr for o in outs])
    for o, m in zip(outs, small):
        np.testing.assert_array_equal(o.copy_to_host(np.empty((300, 200), np.float32)), gpu_lib.upsample(m[0], 300, 200))


def test_the_library_sees_the_gpu(gpu_lib):
    assert cuda_device_count(gpu_lib) == cuda.device_count() >= 1


# --- native analysis: tiles and stitching -------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_tiles_on_the_gpu_equal_the_cpu(gpu_lib, rng, stream, dtype):
    contract = Preprocessing(analysis="native")  # 224² tiles, overlap 32
    sizes = [(1080, 1920), (1, 1), (17, 900), (225, 225), (2160, 3840)]  # 60 + 1 + 5 + 4 + 240 tiles: several launches
    padded, views = frames_with_pitch(rng, sizes)
    buffers = [upload(p, stream) for p in padded]
    images = [DeviceImage(b.ptr, h, w, pitch=p.shape[1]) for b, p, (h, w) in zip(buffers, padded, sizes)]
    n = sum(gpu_lib.tile_count(h, w, (224, 224), 32) for h, w in sizes) + 1
    out = cuda.DeviceBuffer(n * 3 * 224 * 224 * np.dtype(dtype).itemsize)
    gpu_lib.tiles_device(images, "RGB", contract, out.ptr, dtype=dtype, start=1, stream=stream)
    result = out.copy_to_host(np.empty((n, 3, 224, 224), dtype), stream)
    stream.synchronize()
    np.testing.assert_array_equal(result[1:], gpu_lib.tiles(views, "RGB", contract, np.empty((n - 1, 3, 224, 224), dtype)))
    for b in buffers + [out]:
        b.close()


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_stitch_on_the_gpu_equals_the_cpu(gpu_lib, rng, stream, dtype):
    sizes = [(1080, 1920), (1, 1), (17, 900), (225, 225), (2160, 3840)] + [(300, 250)] * 12  # > one 16-image launch
    counts = [gpu_lib.tile_count(h, w, (224, 224), 32) for h, w in sizes]
    maps = rng.uniform(-0.1, 1.1, (sum(counts), 1, 224, 224)).astype(np.float32)
    maps[0, 0, 5, 5] = np.nan
    d_maps = upload(maps, stream)
    outs = [cuda.DeviceBuffer(h * w * np.dtype(dtype).itemsize) for h, w in sizes]
    gpu_lib.stitch_device(d_maps.ptr, (224, 224), sizes, 32, [o.ptr for o in outs], dtype=dtype, stream=stream)
    got = [o.copy_to_host(np.empty(s, dtype), stream) for o, s in zip(outs, sizes)]
    stream.synchronize()
    first = 0
    for g, count, size in zip(got, counts, sizes):
        np.testing.assert_array_equal(g, gpu_lib.stitch(maps[first:first + count], size, 32, dtype=dtype))
        first += count
    for b in outs + [d_maps]:
        b.close()


def test_levels_on_the_gpu_equal_the_cpu(gpu_lib, rng, stream):
    sizes = [(1080, 1920), (1, 1), (2160, 3840)] + [(40, 30)] * 16  # > one 16-map launch
    maps = rng.uniform(-0.1, 1.1, size=(len(sizes), 1, 224, 224)).astype(np.float32)
    maps[0, 0, :3, :3] = np.nan
    d_maps = upload(maps, stream)
    d_levels = [cuda.DeviceBuffer(h * w) for h, w in sizes]
    gpu_lib.postprocess_device(d_maps.ptr, (224, 224), sizes, levels_out=[b.ptr for b in d_levels], stream=stream)
    got = [b.copy_to_host(np.empty(s, np.uint8), stream) for b, s in zip(d_levels, sizes)]
    stream.synchronize()
    for g, m, (h, w) in zip(got, maps, sizes):
        np.testing.assert_array_equal(g, gpu_lib.upsample_u8(m[0], h, w))
    for b in d_levels + [d_maps]:
        b.close()
