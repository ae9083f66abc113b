"""API-contract tests of the TensorRT runtime backend against FAKE tensorrt and CUDA modules
(tests/helpers/fake_tensorrt.py, fake_cuda.py).

They check the calls (execute_async_v3 on the backend's own stream, every status checked, output
shapes read after the input shape is set), the refusal of engines that do not fit, and the engine
cache. They are not TensorRT runs; see test_tensorrt_real.py for those.
"""

import json

import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.engine_sidecar import BuildOptions, sidecar_path
from fakelocator.export.tensorrt_build import build_engine
from fakelocator.runtime.backends import tensorrt as backend_module
from fakelocator.runtime.backends.base import Backend
from helpers.fake_tensorrt import tiny_net


@pytest.fixture
def engine(fake_trt, fp32_export, tmp_path):
    path = tmp_path / "model.engine"
    build_engine(fp32_export.path, path, BuildOptions(batch=(1, 4, 8)), log=lambda m: None)
    return path


def test_loads_an_engine_and_runs_it_on_its_own_stream(fake_trt, engine):
    _, state, device = fake_trt
    with backend_module.load(str(engine), device="cuda:0") as b:
        assert isinstance(b, Backend) and b.name == "tensorrt" and b.device == "cuda:0" and b.max_batch == 8
        state.calls.clear()
        x = np.random.default_rng(0).normal(size=(3, 3, 64, 64)).astype(np.float32)
        out = b.infer(x)
        expected = tiny_net(x)
        for name in ("map", "score", "features"):
            np.testing.assert_allclose(out[name], expected[name], rtol=1e-6)
            assert out[name].dtype == np.float32
        names = state.names()
        assert names.index("set_input_shape") < names.index("execute_async_v3") < names.index("get_tensor_shape")
        assert state.find("execute_async_v3") == [("execute_async_v3", b.stream.handle)] and b.stream.handle != 0
        assert ("set_input_shape", "image", (3, 3, 64, 64)) in state.calls
        assert device.copies and all(c.stream == b.stream.handle for c in device.copies)
        assert device.idle(), "infer returns after its stream has run everything it queued"
        assert device.current == 0


def test_outputs_are_copies_not_views_of_reused_buffers(fake_trt, engine):
    with backend_module.load(str(engine)) as b:
        first = b.infer(np.zeros((2, 3, 64, 64), np.float32))
        kept = first["map"].copy()
        b.infer(np.ones((1, 3, 64, 64), np.float32))
        assert np.array_equal(first["map"], kept)


def test_model_info_comes_from_the_sidecar(fake_trt, engine, tiny_model):
    with backend_module.load(str(engine)) as b:
        assert b.info.format == "engine" and b.info.precision == "fp32"
        assert b.info.preprocessing == tiny_model.config.preprocessing
        assert b.info.config == tiny_model.config.to_dict() and b.info.provenance["steps"] == 300


def test_a_batch_outside_the_profile_is_refused(fake_trt, engine):
    with backend_module.load(str(engine)) as b:
        with pytest.raises(FakeLocatorError, match=r"outside the engine's profile.*--batch"):
            b.infer(np.zeros((9, 3, 64, 64), np.float32))
        with pytest.raises(FakeLocatorError, match="outside"):
            b.infer(np.zeros((1, 3, 32, 64), np.float32))


def test_a_failed_execution_is_an_error(fake_trt, engine):
    _, state, _ = fake_trt
    with backend_module.load(str(engine)) as b:
        state.execute_ok = False
        with pytest.raises(FakeLocatorError, match="inference failed"):
            b.infer(np.zeros((1, 3, 64, 64), np.float32))


def test_an_engine_from_another_tensorrt_is_refused_with_the_rebuild_command(install, fp32_export, tmp_path):
    install("10.14.1.48")
    path = tmp_path / "model.engine"
    build_engine(fp32_export.path, path, BuildOptions(batch=(1, 4, 8)), log=lambda m: None)
    install("10.16.1.11")
    with pytest.raises(FakeLocatorError) as e:
        backend_module.load(str(path))
    assert "built with TensorRT 10.14.1.48, this machine has TensorRT 10.16.1.11" in str(e.value)
    assert f"fakelocator export engine {fp32_export.path} -o {path} --batch-range 1,4,8" in str(e.value)


def test_an_engine_without_its_sidecar_or_with_another_plan_is_refused(fake_trt, engine):
    plan = engine.read_bytes()
    engine.write_bytes(plan + b" ")
    with pytest.raises(FakeLocatorError, match="sha256 differs"):
        backend_module.load(str(engine))
    sidecar_path(engine).unlink()
    with pytest.raises(FakeLocatorError, match="no such file"):
        backend_module.load(str(engine))


def test_a_version_compatible_engine_is_trusted_to_run_its_lean_runtime(fake_trt, fp32_export, tmp_path):
    _, state, _ = fake_trt
    path = tmp_path / "vc.engine"
    build_engine(fp32_export.path, path, BuildOptions(version_compatible=True), log=lambda m: None)
    backend_module.load(str(path)).close()
    assert state.find("deserialize_cuda_engine") == [("deserialize_cuda_engine", True)]


def test_an_undeserializable_plan_is_an_error_with_the_rebuild_command(fake_trt, engine):
    import hashlib

    engine.write_bytes(b"garbage")
    side = sidecar_path(engine)
    d = json.loads(side.read_text())
    d["engine_sha256"] = hashlib.sha256(b"garbage").hexdigest()
    side.write_text(json.dumps(d))
    with pytest.raises(FakeLocatorError, match="cannot deserialize it \\(magic tag does not match\\); rebuild it"):
        backend_module.load(str(engine))


def test_an_onnx_is_built_once_per_machine_through_the_cache(fake_trt, fp32_export, tmp_path):
    _, state, _ = fake_trt
    cache = tmp_path / "cache"
    first = backend_module.load(str(fp32_export.path), batch_size=4, cache_dir=str(cache))
    assert len(state.find("build_serialized_network")) == 1
    assert first.max_batch == 4 and first.profile.min[0] == 1
    second = backend_module.load(str(fp32_export.path), batch_size=4, cache_dir=str(cache))
    assert len(state.find("build_serialized_network")) == 1, "the cached engine is reused"
    assert second.info.path == first.info.path and second.info.path.startswith(str(cache))
    backend_module.load(str(fp32_export.path), batch_size=8, cache_dir=str(cache))
    assert len(state.find("build_serialized_network")) == 2, "another profile is another engine"
    assert len(list(cache.glob("model-*.engine"))) == 2 and len(list(cache.glob("*.engine.json"))) == 2


def test_the_cache_follows_fakelocator_cache(fake_trt, fp32_export, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKELOCATOR_CACHE", str(tmp_path / "c"))
    b = backend_module.load(str(fp32_export.path), batch_size=2)
    assert b.info.path.startswith(str(tmp_path / "c" / "engines"))


def test_a_stale_cached_engine_is_rebuilt(fake_trt, fp32_export, tmp_path):
    _, state, _ = fake_trt
    cache = tmp_path / "cache"
    b = backend_module.load(str(fp32_export.path), batch_size=2, cache_dir=str(cache))
    with open(b.info.path, "ab") as f:
        f.write(b"corrupted")
    backend_module.load(str(fp32_export.path), batch_size=2, cache_dir=str(cache))
    assert len(state.find("build_serialized_network")) == 2


def test_build_options_pass_through_load_and_unknown_ones_are_refused(fake_trt, fp32_export, tmp_path):
    _, state, _ = fake_trt
    backend_module.load(str(fp32_export.path), batch_size=2, cache_dir=str(tmp_path), optimization_level=5)
    assert ("builder_optimization_level", 5) in state.calls
    with pytest.raises(FakeLocatorError, match="unknown options"):
        backend_module.load(str(fp32_export.path), cache_dir=str(tmp_path), threads=4)


def test_engines_take_no_build_options_and_the_device_must_be_a_gpu(fake_trt, engine):
    with pytest.raises(FakeLocatorError, match="apply when building from an ONNX"):
        backend_module.load(str(engine), workspace=1 << 30)
    with pytest.raises(FakeLocatorError, match="runs on a GPU"):
        backend_module.load(str(engine), device="cpu")
    assert backend_module.device_index("auto") == 0 and backend_module.device_index("cuda:2") == 2


def test_close_is_idempotent_and_frees_the_buffers(fake_trt, engine):
    _, _, device = fake_trt
    b = backend_module.load(str(engine))
    assert device.live_device_buffers() == 4  # image, map, score, features
    b.close()
    b.close()
    assert device.live_device_buffers() == 0
    with pytest.raises(FakeLocatorError, match="closed"):
        b.infer(np.zeros((1, 3, 64, 64), np.float32))


def test_available_says_what_is_missing(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    ok, reason = backend_module.available()
    assert not ok and "TensorRT is not installed" in reason
    assert backend_module.FORMATS == ("engine", "onnx")
