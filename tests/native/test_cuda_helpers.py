"""fakelocator.runtime.cuda: cuda-python helpers. Error handling is tested everywhere; memory and
streams only where there is a GPU."""

import sys

import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime import cuda


def test_without_cuda_python_every_helper_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)
    for make in (cuda.Stream, lambda: cuda.DeviceBuffer(16), lambda: cuda.PinnedBuffer(16), cuda.device_count):
        with pytest.raises(FakeLocatorError, match=r"needs cuda-python.*fakelocator\[gpu\]"):
            make()


def test_check_returns_the_values_after_the_error_code():
    cudart = pytest.importorskip("cuda.bindings.runtime")
    ok = cudart.cudaError_t.cudaSuccess
    assert cuda.check((ok,), "cudaFree") is None
    assert cuda.check((ok, 7), "cudaMalloc") == 7
    assert cuda.check((ok, 1, 2), "cudaMemGetInfo") == (1, 2)


def test_check_raises_an_error_naming_the_call_and_the_cuda_error():
    cudart = pytest.importorskip("cuda.bindings.runtime")
    with pytest.raises(cuda.CudaError, match=r"cudaMalloc\(64 bytes\) failed: cudaErrorMemoryAllocation \(out of memory\)") as info:
        cuda.check((cudart.cudaError_t.cudaErrorMemoryAllocation, None), "cudaMalloc(64 bytes)")
    assert info.value.call == "cudaMalloc(64 bytes)" and info.value.name == "cudaErrorMemoryAllocation"
    assert isinstance(info.value, FakeLocatorError)


def test_without_a_gpu_there_are_no_devices_and_allocation_fails_clearly():
    pytest.importorskip("cuda.bindings.runtime")
    if cuda.device_count() > 0:
        pytest.skip("a GPU is present")
    with pytest.raises(cuda.CudaError, match="cudaMalloc"):
        cuda.DeviceBuffer(1024)


@pytest.mark.needs_cuda
def test_device_and_pinned_buffers_round_trip_through_a_stream(rng):
    data = rng.integers(0, 256, size=(64, 48, 3), dtype=np.uint8)
    with cuda.Stream() as stream, cuda.PinnedBuffer(data.nbytes) as pinned, cuda.DeviceBuffer(data.nbytes) as device:
        staged = pinned.array(data.shape, np.uint8)
        staged[...] = data
        device.copy_from_host(staged, stream)
        back = device.copy_to_host(np.empty_like(data), stream)
        stream.synchronize()
        np.testing.assert_array_equal(back, data)
        assert stream.handle != 0 and device.ptr != 0
        with pytest.raises(FakeLocatorError, match="do not fit"):
            device.copy_from_host(np.zeros(data.nbytes + 1, np.uint8))
        with pytest.raises(FakeLocatorError, match="needs"):
            pinned.array((data.nbytes + 1,))


@pytest.mark.needs_cuda
def test_device_properties_and_events():
    props = cuda.device_properties(0)
    assert props["name"] and props["compute_capability"] >= (7, 5) and props["total_memory"] > 0
    with cuda.Stream() as stream, cuda.Event() as start, cuda.Event() as end:
        start.record(stream)
        end.record(stream)
        assert cuda.Event.elapsed_ms(start, end) >= 0


@pytest.mark.needs_cuda
def test_closing_twice_is_harmless():
    buffer = cuda.DeviceBuffer(16)
    buffer.close()
    buffer.close()
    with pytest.raises(FakeLocatorError, match="closed"):
        buffer.copy_from_host(np.zeros(4, np.uint8))


# ---- helpers of the GPU pipeline (runtime/device_pipeline.py) ------------------------------------


def test_memcpy_async_refuses_an_unknown_direction_before_calling_cuda():
    with pytest.raises(FakeLocatorError, match="kind must be one of"):
        cuda.memcpy_async(0x1000, 0x2000, 4, "h2h", None)
    cuda.memcpy_async(0x1000, 0x2000, 0, "h2d", None)  # nothing to copy: no CUDA call at all


def test_without_a_gpu_the_pipeline_helpers_name_the_failing_call():
    pytest.importorskip("cuda.bindings.runtime")
    if cuda.device_count() > 0:
        pytest.skip("a GPU is present")
    with pytest.raises(cuda.CudaError, match=r"cudaSetDevice\(0\) failed"):
        cuda.set_device(0)
    with pytest.raises(cuda.CudaError, match=r"cudaMemcpyAsync \(h2d, 16 bytes\) failed"):
        cuda.memcpy_async(0x1000, 0x2000, 16, "h2d", 0x1234)


@pytest.mark.needs_cuda
def test_copies_ordered_across_streams_by_an_event(rng):
    data = rng.integers(0, 256, size=1 << 20, dtype=np.uint8)
    with cuda.Stream() as upload, cuda.Stream() as compute, cuda.Event() as uploaded, \
            cuda.PinnedBuffer(data.nbytes) as src, cuda.PinnedBuffer(data.nbytes) as dst, \
            cuda.DeviceBuffer(data.nbytes) as a, cuda.DeviceBuffer(data.nbytes) as b:
        cuda.set_device(0)
        src.array(data.shape)[...] = data
        cuda.memcpy_async(a.ptr, src.ptr, data.nbytes, "h2d", upload)
        uploaded.record(upload)
        compute.wait(uploaded)
        cuda.memcpy_async(b.ptr, a.ptr, data.nbytes, "d2d", compute)
        cuda.memcpy_async(dst.ptr, b.ptr, data.nbytes, "d2h", compute)
        compute.synchronize()
        np.testing.assert_array_equal(dst.array(data.shape), data)
