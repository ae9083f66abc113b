"""The GPU pipeline on a real GPU: the device path gives the host path's results.

- ``CopyNet`` (benchmarks/device_pipeline.py), a stand-in network made of device copies: the whole
  device path (pinned staging, copies, kernels into the bindings, streams, events, two batches in
  flight) except a real network. Needs a GPU, cuda-python and the native library built with CUDA;
  results must equal the host path's bit for bit.
- ONNX Runtime's CUDA provider through I/O binding (needs onnxruntime-gpu), and TensorRT
  (``needs_tensorrt``), on the tiny red model: within 1e-6 of the host path on the same device.

Skipped without a GPU (needs_cuda); never run on the development machine. The orchestration of the
same code is tested everywhere by test_device_pipeline.py with a fake device.
"""

from __future__ import annotations

import numpy as np
import pytest

from fakelocator.contract import Preprocessing
from fakelocator.runtime import Locator

pytestmark = pytest.mark.needs_cuda

SIZES = [(1080, 1920), (1, 1), (37, 500), (224, 224), (4000, 3), (2, 4000), (480, 640), (720, 1280), (33, 17)]


@pytest.fixture(scope="module")
def gpu_lib():
    from fakelocator.runtime import native

    lib = native.load()
    if lib is None or not lib.has_cuda:
        pytest.skip(f"the native library is not built with CUDA ({lib}); run `make native` on this machine")
    return lib


def frames(rng, sizes=SIZES):
    return [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in sizes]


def assert_same(got, want, atol=0.0):
    for a, b in zip(got, want):
        assert a.error is None and b.error is None
        assert a.map.shape == b.map.shape == (b.height, b.width)
        np.testing.assert_allclose(a.map, b.map, rtol=0, atol=atol)
        assert abs(a.score - b.score) <= atol


@pytest.mark.parametrize("batch", [4, 16])
def test_copynet_device_path_equals_the_host_path_bit_for_bit(gpu_lib, rng, batch):
    from fakelocator.benchmarks.device_pipeline import CopyNet

    contract = Preprocessing(height=64, width=48, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # maps in [0, 1]
    backend = CopyNet(contract)
    with Locator(backend, batch_size=batch, pipeline="device") as on_device:
        on_host = Locator(backend, batch_size=batch, pipeline="host", preprocessor="native")
        images = frames(rng) * 3  # several batches: both slots, regrowth, reuse
        got = on_device.locate(images, keep_outputs=True)
        want = on_host.locate(images, keep_outputs=True)
        assert_same(got, want)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a.outputs["features"], b.outputs["features"])
            np.testing.assert_array_equal(a.outputs["map"], b.outputs["map"])
        assert all(got[0].timings[s] >= 0 for s in ("h2d", "preprocess", "infer", "postprocess", "d2h"))
        pipelines = on_device._device_path.pipelines
        warm = list(pipelines[0].allocations)
        on_device.locate(images)
        assert len(pipelines) == 1 and pipelines[0].allocations == warm


def test_onnxruntime_cuda_io_binding_equals_the_host_path(red_model, rng, gpu_lib):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
    with Locator.load(red_model, backend="onnxruntime", device="cuda", batch_size=4, pipeline="device") as on_device, \
            Locator.load(red_model, backend="onnxruntime", device="cuda", batch_size=4, pipeline="host") as on_host:
        images = frames(rng)
        assert_same(on_device.locate(images), on_host.locate(images), atol=1e-6)


@pytest.mark.needs_tensorrt
def test_tensorrt_bindings_equal_the_host_path(red_model, rng, gpu_lib, tmp_path):
    with Locator.load(red_model, backend="tensorrt", batch_size=4, pipeline="device", cache_dir=str(tmp_path)) as on_device, \
            Locator.load(red_model, backend="tensorrt", batch_size=4, pipeline="host", cache_dir=str(tmp_path)) as on_host:
        images = frames(rng)
        assert_same(on_device.locate(images), on_host.locate(images), atol=1e-6)
