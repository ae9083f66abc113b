"""The memory run: samples as results come out, growth measured from the end of warm-up."""

import pytest

from fakelocator.benchmarks import memory
from fakelocator.benchmarks.inputs import make_pool


class FakeLocator:
    batch_size = 4

    class backend:
        name, device = "fake", "cpu"

    def __init__(self):
        self.seen = 0

    def locate_iter(self, images):
        from fakelocator.runtime.results import LocateResult

        for _ in images:
            self.seen += 1
            yield LocateResult("<bytes>")


def test_growth_is_measured_from_the_end_of_warmup(monkeypatch):
    locator = FakeLocator()
    # 1 MB per image during the first 10 images (warm-up: caches fill), then a 0.5 MB leak per image
    monkeypatch.setattr(memory, "rss_bytes", lambda: int((100 + min(locator.seen, 10) + 0.5 * max(0, locator.seen - 10)) * memory.MB))
    result = memory.memory_run(locator, make_pool("direct224", size=1), images=100, samples=100)
    assert result["images"] == 100 and locator.seen == 100 and len(result["samples"]) == 100
    assert result["rss"]["at_warmup_mb"] == pytest.approx(110.0)
    assert result["rss"]["growth_mb"] == pytest.approx(45.0) and result["rss"]["end_mb"] == pytest.approx(155.0)
    assert result["rss"]["trend_mb_per_1000"] == pytest.approx(500.0)  # 0.5 MB per image
    assert result["gpu"] is None


def test_the_resident_set_size_is_read():
    assert memory.rss_bytes() > 10 * memory.MB
    assert memory.gpu_used_bytes("cpu") is None


def test_a_failed_input_stops_the_run():
    class Failing(FakeLocator):
        def locate_iter(self, images):
            from fakelocator.runtime.results import LocateResult

            for _ in images:
                yield LocateResult("<bytes 0>", error="corrupt JPEG data")

    with pytest.raises(RuntimeError, match="corrupt"):
        memory.memory_run(Failing(), make_pool("direct224", size=1), images=10)


class _NoTorch:
    """Stands in for torch in sys.modules: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"torch.{name} used by a torch-free measurement")


def _fake_cudart(free: int, total: int):
    import types

    cudart = types.ModuleType("cuda.bindings.runtime")
    cudart.calls = []

    class Props:
        name, major, minor, totalGlobalMem, multiProcessorCount = b"NVIDIA Fake GPU\0", 8, 9, total, 128

    def call(name, *result):
        return lambda *args: cudart.calls.append((name, *args)) or (0, *result)

    cudart.cudaSetDevice = call("cudaSetDevice")
    cudart.cudaMemGetInfo = call("cudaMemGetInfo", free, total)
    cudart.cudaGetDeviceProperties = call("cudaGetDeviceProperties", Props())
    cudart.cudaRuntimeGetVersion = call("cudaRuntimeGetVersion", 12060)
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    package = types.ModuleType("cuda")
    package.bindings, package.__path__, bindings.__path__ = bindings, [], []
    return cudart, {"cuda": package, "cuda.bindings": bindings, "cuda.bindings.runtime": cudart}


def test_gpu_memory_and_description_come_from_cuda_python_never_torch(monkeypatch):
    import sys

    from fakelocator.benchmarks import environment

    cudart, modules = _fake_cudart(free=3 * memory.MB, total=10 * memory.MB)
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setitem(sys.modules, "torch", _NoTorch())
    assert memory.gpu_used_bytes("cuda:1") == 7 * memory.MB
    assert ("cudaSetDevice", 1) in cudart.calls  # the device asked about, not whichever is current
    gpu = environment.gpu_description("cuda:0")
    assert gpu["name"] == "NVIDIA Fake GPU" and gpu["compute_capability"] == [8, 9]
    assert gpu["total_memory"] == 10 * memory.MB and gpu["cuda_runtime"] == "12.6"


def test_without_cuda_python_gpu_memory_is_unknown_not_an_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cuda", None)
    monkeypatch.setitem(sys.modules, "torch", _NoTorch())
    assert memory.gpu_used_bytes("cuda:0") is None
