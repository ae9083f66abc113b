"""Real TensorRT: build and run engines on a GPU. Skipped where tensorrt or a GPU is missing.

NOT RUN in this project's environments so far (TensorRT installs only from NVIDIA's index, which
they cannot reach); docs/export.md lists the commands that run these on a GPU machine.
"""

import numpy as np
import pytest

from fakelocator.export.engine_spec import parse_hw
from fakelocator.runtime.engine_sidecar import BuildOptions, EngineSidecar, sidecar_path
from fakelocator.export.parity import FP16, FP32, BackendRunner, compare, onnxruntime_runner, standard_cases, torch_runner

pytestmark = [pytest.mark.needs_tensorrt, pytest.mark.needs_cuda]


def build(onnx, path, **options):
    from fakelocator.export.tensorrt_build import build_engine

    return build_engine(onnx, path, BuildOptions(**options), log=print)


def load(path, **kwargs):
    from fakelocator.runtime.backends.tensorrt import load as load_backend

    return load_backend(str(path), **kwargs)


def test_fp32_engine_without_tf32_matches_onnx_runtime_within_fp32_bounds(fp32_export, tmp_path, tiny_model):
    sidecar = build(fp32_export.path, tmp_path / "fp32.engine", batch=(1, 4, 8), tf32=False)
    assert sidecar.precision == "fp32"
    with load(tmp_path / "fp32.engine") as backend:
        cases = standard_cases(tiny_model.config.preprocessing, batch=4)
        report = compare(onnxruntime_runner(fp32_export.path), BackendRunner(backend), cases, FP32)
        print(report.format())
        assert report.passed


def test_fp16_engine_from_an_fp32_onnx_is_within_the_fp16_bound_of_pytorch(fp32_export, tmp_path, tiny_model):
    sidecar = build(fp32_export.path, tmp_path / "fp16.engine", batch=(1, 4, 8), precision="fp16")
    assert sidecar.precision == "fp16" and sidecar.converted_onnx_path
    with load(tmp_path / "fp16.engine") as backend:
        cases = standard_cases(tiny_model.config.preprocessing, batch=4)
        report = compare(torch_runner(tiny_model), BackendRunner(backend), cases, FP16)
        print(report.format())
        assert report.passed


def test_every_batch_in_the_profile_runs_and_outputs_follow_the_input_shape(fp16_export, tmp_path):
    build(fp16_export.path, tmp_path / "m.engine", batch=(1, 3, 5))
    with load(tmp_path / "m.engine") as backend:
        x = np.random.default_rng(0).normal(size=(5, 3, 64, 64)).astype(np.float32)
        full = backend.infer(x)
        for n in (1, 2, 5):
            out = backend.infer(x[:n])
            assert out["map"].shape == (n, 1, 64, 64) and out["score"].shape == (n, 1)
            np.testing.assert_allclose(out["map"], full["map"][:n], atol=2e-3)


def test_dynamic_hw_engine_runs_at_the_profile_sizes(dynamic_export, tmp_path):
    build(dynamic_export.path, tmp_path / "dyn.engine", batch=(1, 2, 2), hw=parse_hw("48x48,64x64,96x128"))
    with load(tmp_path / "dyn.engine") as backend:
        for h, w in ((48, 48), (64, 64), (96, 128), (80, 100)):
            out = backend.infer(np.zeros((2, 3, h, w), np.float32))
            assert out["map"].shape == (2, 1, h, w)


def test_an_onnx_builds_once_through_the_engine_cache_and_the_timing_cache_is_saved(fp32_export, tmp_path):
    timing = tmp_path / "timing.cache"
    first = load(fp32_export.path, batch_size=2, cache_dir=str(tmp_path / "cache"), timing_cache=str(timing))
    assert timing.stat().st_size > 0
    path = first.info.path
    first.close()
    before = (tmp_path / "cache").stat().st_mtime_ns
    second = load(fp32_export.path, batch_size=2, cache_dir=str(tmp_path / "cache"), timing_cache=str(timing))
    assert second.info.path == path and (tmp_path / "cache").stat().st_mtime_ns == before
    assert EngineSidecar.read(sidecar_path(path)).gpu_name
    second.close()
