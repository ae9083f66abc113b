"""benchmarks/kernels.py runs end to end on small frames (its numbers are not checked: it measures)."""

import ctypes
import json
import sys
import time
import types

import numpy as np
import pytest

from fakelocator.benchmarks import kernels
from helpers.native_build import forget_loaded_library


def test_the_kernel_benchmark_runs_and_writes_its_results(native_path, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FAKELOCATOR_NATIVE_LIB", str(native_path))
    forget_loaded_library()
    out = tmp_path / "kernels.json"
    try:
        code = kernels.main(["--device", "cpu", "--batch", "2", "--height", "60", "--width", "90", "--threads", "1,2", "--repeats", "1",
                            "--native-sizes", "40x50,300x250", "--output", str(out)])
    finally:
        forget_loaded_library()
    assert code == 0
    results = json.loads(out.read_text())
    assert results["checks"]["preprocess_max_abs_vs_contract"] <= 1e-5
    stages = {(r["stage"], r["path"].split(",")[0]) for r in results["rows"]}
    assert ("preprocess_fp32", "native cpu") in stages and ("upsample+overlay", "native cpu") in stages
    assert all(r["ms"] > 0 and (r["gb_per_s"] is None or r["gb_per_s"] > 0) for r in results["rows"])
    # native analysis: the C++ tiles and stitching agree with the numpy path; uint8 within one level
    for size in ("40x50", "300x250"):
        assert results["checks"][f"tiles_max_abs_vs_numpy @{size}"] <= 1e-6
        assert results["checks"][f"stitch_max_abs_vs_numpy @{size}"] <= 1e-6
        assert results["checks"][f"stitch_u8_max_level_diff_vs_float32 @{size}"] <= 1
        assert results["checks"][f"upsample_u8_max_level_diff_vs_contract @{size}"] <= 1
    native_rows = {(r["stage"], r["path"]) for r in results["rows"] if r["stage"].endswith("@300x250")}
    assert ("tiles_fp32 @300x250", "numpy") in native_rows and ("stitch_u8 @300x250", "native cpu, 2 threads") in native_rows
    assert {r["stage"].split(" @")[0] for r in results["rows"]} >= {
        "fit_map_to_png_f32", "fit_map_to_png_u8", "native_map_to_png_f32", "native_map_to_png_u8", "png_encode_only"}
    assert all(r["tiles"] == 4 for r in results["rows"] if r["stage"].endswith("@300x250"))
    assert "preprocess_fp32" in capsys.readouterr().out


class _HostBuffer:
    """Stands in for DeviceBuffer and PinnedBuffer: host memory, copies with memmove."""

    def __init__(self, nbytes):
        self._data = np.zeros(max(1, nbytes), np.uint8)
        self.ptr, self.nbytes = self._data.ctypes.data, nbytes

    def copy_from_host(self, array, stream=None):
        ctypes.memmove(self.ptr, array.ctypes.data, array.nbytes)

    def copy_to_host(self, array, stream=None):
        ctypes.memmove(array.ctypes.data, self.ptr, array.nbytes)
        return array

    def array(self, shape, dtype=np.uint8):
        count = int(np.prod(shape))
        return self._data[: count * np.dtype(dtype).itemsize].view(dtype).reshape(shape)

    def close(self):
        pass


class _HostStream:
    handle = 0

    def synchronize(self):
        pass

    def close(self):
        pass


class _HostEvent:
    def record(self, stream=None):
        self.time = time.perf_counter()

    def close(self):
        pass

    @staticmethod
    def elapsed_ms(start, end):
        return (end.time - start.time) * 1e3


def _memcpy(dst, src, nbytes, kind, stream):
    ctypes.memmove(dst, src, nbytes)
    return (0,)


@pytest.mark.slow  # shares the second build with test_kernel_emulation.py
@pytest.mark.skipif(sys.platform != "linux", reason="the kernel emulator uses ucontext (Linux)")
def test_the_gpu_benchmark_runs_on_the_kernel_emulator(cpu_only_build, monkeypatch):
    """bench_cuda's pointer arithmetic, stages and agreement checks, with host memory for device
    memory and the emulated kernels for the GPU: what can go wrong in it short of the GPU itself."""
    emulated = cpu_only_build / "libfakelocator_native_emulated.so"
    if not emulated.is_file():
        pytest.skip(f"the emulation library was not built in {cpu_only_build}")
    from fakelocator.contract import Preprocessing
    from fakelocator.runtime import cuda, native

    kinds = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2, cudaMemcpyDeviceToDevice=3)
    monkeypatch.setattr(cuda, "runtime", lambda: types.SimpleNamespace(cudaMemcpyAsync=_memcpy, cudaMemcpyKind=kinds))
    monkeypatch.setattr(cuda, "DeviceBuffer", _HostBuffer)
    monkeypatch.setattr(cuda, "PinnedBuffer", _HostBuffer)
    monkeypatch.setattr(cuda, "Stream", _HostStream)
    monkeypatch.setattr(cuda, "Event", _HostEvent)
    monkeypatch.setattr(cuda, "device_properties", lambda index=0: {"name": "emulated"})
    contract = Preprocessing(height=32, width=24)
    frames, maps = kernels.make_inputs(3, 40, 60, contract, seed=0)
    rows, checks = kernels.bench_cuda(native.NativeLibrary(emulated), frames, maps, contract, kernels.jet_lut(), repeats=1, copy_bytes=1 << 16)
    assert all(v for k, v in checks.items() if k.startswith("cuda_equals")), checks
    kernels.add_throughput(rows, kernels.stage_bytes(frames, maps, contract), batch=3)
    assert [r["stage"] for r in rows] == [
        "copy_frames_h2d", "preprocess_fp32", "preprocess_fp16", "upsample", "upsample+overlay", "copy_maps_d2h",
        "upsample_u8", "tiles_fp32", "tiles_fp16", "stitch_fp32", "stitch_u8", "device_copy"
    ]
    assert {r["stage"]: r.get("tiles") for r in rows if r["stage"].startswith(("tiles", "stitch"))} == dict.fromkeys(
        ["tiles_fp32", "tiles_fp16", "stitch_fp32", "stitch_u8"], 3 * 8)  # 3 frames of 40 x 60: 2 x 4 tiles of 32 x 24, overlap 11
