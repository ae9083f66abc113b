"""API-contract tests of the engine builder against a FAKE tensorrt module (tests/helpers/fake_tensorrt.py).

These check which TensorRT calls fakelocator makes, and with what: network flags, builder flags,
the optimization profile, the timing cache, parser and build failures, the plan and sidecar written.
They are not TensorRT runs: whether TensorRT builds and runs these models is for the
``needs_tensorrt`` tests in test_tensorrt_real.py, on a GPU machine with TensorRT.
"""

import json

import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.engine_sidecar import BuildOptions, EngineSidecar, sidecar_path
from fakelocator.export.tensorrt_build import build_engine
from fakelocator.runtime.tensorrt_lib import TensorRTMissing, import_tensorrt, tensorrt_available
from helpers import fake_tensorrt


def build(onnx, tmp_path, options=BuildOptions(), **kwargs):
    messages = []
    sidecar = build_engine(onnx, tmp_path / "model.engine", options, log=messages.append, **kwargs)
    return sidecar, messages


def test_strongly_typed_fp32_build_call_sequence(fake_trt, fp32_export, tmp_path):
    trt, state, _ = fake_trt
    sidecar, messages = build(fp32_export.path, tmp_path, BuildOptions(batch=(1, 16, 64), workspace=2 << 30, optimization_level=4))
    assert state.names()[:3] == ["Builder", "create_network", "OnnxParser"]
    assert state.find("create_network") == [("create_network", 1 << 1)]
    assert state.find("parse_from_file") == [("parse_from_file", str(fp32_export.path))]
    assert ("set_memory_pool_limit", trt.MemoryPoolType.WORKSPACE, 2 << 30) in state.calls
    assert ("builder_optimization_level", 4) in state.calls
    assert state.find("set_shape") == [("set_shape", "image", (1, 3, 64, 64), (16, 3, 64, 64), (64, 3, 64, 64))]
    assert not state.find("set_flag"), "a strongly typed build sets no precision flag"
    assert state.names()[-1] == "build_serialized_network"
    assert sidecar.precision == "fp32" and sidecar.strongly_typed
    assert any("precision follows the ONNX: fp32" in m for m in messages)


def test_the_engine_is_the_pure_plan_and_the_sidecar_describes_it(fake_trt, fp32_export, tmp_path):
    sidecar, _ = build(fp32_export.path, tmp_path)
    engine = tmp_path / "model.engine"
    assert engine.read_bytes().startswith(b"FAKEPLAN"), "nothing is prepended to the plan"
    stored = EngineSidecar.read(sidecar_path(engine))
    assert stored == sidecar
    assert (stored.tensorrt_version, stored.gpu_name, stored.compute_capability) == ("10.16.1.11", "NVIDIA Fake GPU", (8, 9))
    assert stored.onnx_sha256 == fp32_export.sha256 and stored.source_onnx_sha256 == ""
    assert stored.preprocessing["height"] == 64 and stored.model_config["unet_width"] == 4
    assert stored.provenance["steps"] == 300 and stored.onnx_opset == 18
    assert [(t["name"], t["mode"], t["dtype"]) for t in stored.io] == [
        ("image", "input", "float32"), ("map", "output", "float32"), ("score", "output", "float32"), ("features", "output", "float32"),
    ]
    import hashlib

    assert stored.engine_sha256 == hashlib.sha256(engine.read_bytes()).hexdigest()


def test_fp16_from_an_fp32_onnx_is_converted_first_and_parsed_from_the_conversion(fake_trt, fp32_export, tmp_path):
    _, state, _ = fake_trt
    sidecar, messages = build(fp32_export.path, tmp_path, BuildOptions(precision="fp16"))
    converted = tmp_path / "model.engine.fp16.onnx"
    assert state.find("parse_from_file") == [("parse_from_file", str(converted))]
    assert not state.find("set_flag")
    assert sidecar.precision == "fp16" and sidecar.source_onnx_sha256 == fp32_export.sha256
    assert sidecar.converted_onnx_path == str(converted) and sidecar.onnx_sha256 != fp32_export.sha256
    assert any(m.startswith(f"converted {fp32_export.path}") for m in messages)


def test_an_fp16_onnx_builds_strongly_typed_without_conversion(fake_trt, fp16_export, tmp_path):
    _, state, _ = fake_trt
    sidecar, _ = build(fp16_export.path, tmp_path)
    assert state.find("parse_from_file") == [("parse_from_file", str(fp16_export.path))]
    assert state.find("create_network") == [("create_network", 2)] and sidecar.precision == "fp16"


def test_weak_typing_sets_the_fp16_flag_on_an_untyped_network_when_asked(fake_trt, fp32_export, tmp_path):
    _, state, _ = fake_trt
    sidecar, _ = build(fp32_export.path, tmp_path, BuildOptions(weak_fp16=True))
    assert state.find("create_network") == [("create_network", 0)]
    assert ("set_flag", 0) in state.calls  # BuilderFlag.FP16
    assert sidecar.precision == "fp16" and not sidecar.strongly_typed


def test_weak_typing_on_tensorrt_11_is_refused(install, fp32_export, tmp_path):
    _, state, _ = install("11.1.0.5")
    with pytest.raises(FakeLocatorError, match="TensorRT 11.1.0.5 has no FP16 builder flag"):
        build(fp32_export.path, tmp_path, BuildOptions(weak_fp16=True))
    assert not state.find("Builder")


@pytest.mark.parametrize("version, strongly_typed, version_compatible, exclude_lean", [
    ("10.16.1.11", 1, 13, 14),  # NvInfer.h at release/10.16
    ("11.1.0.5", 0, 12, 13),  # TensorRT 11 dropped the weak-typing flags and renumbered the rest
])
def test_tf32_hardware_and_version_compatibility_flags(install, fp32_export, tmp_path, version, strongly_typed, version_compatible, exclude_lean):
    trt, state, _ = install(version)
    options = BuildOptions(tf32=False, hardware_compatibility="same_compute_capability", version_compatible=True, exclude_lean_runtime=True)
    build(fp32_export.path, tmp_path, options)
    assert state.find("create_network") == [("create_network", 1 << strongly_typed)]
    assert ("clear_flag", 6) in state.calls
    assert ("hardware_compatibility_level", 2) in state.calls  # SAME_COMPUTE_CAPABILITY
    assert ("set_flag", version_compatible) in state.calls and ("set_flag", exclude_lean) in state.calls


def test_a_hardware_level_this_tensorrt_lacks_is_an_error(install, fp32_export, tmp_path):
    install("10.8.0.43")
    with pytest.raises(FakeLocatorError, match="same_compute_capability needs TensorRT 10.9"):
        build(fp32_export.path, tmp_path, BuildOptions(hardware_compatibility="same_compute_capability"))


def test_the_timing_cache_is_loaded_and_saved(fake_trt, fp32_export, tmp_path):
    _, state, _ = fake_trt
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"old")
    _, messages = build(fp32_export.path, tmp_path, BuildOptions(timing_cache=str(cache)))
    assert state.find("create_timing_cache") == [("create_timing_cache", b"old")]
    assert state.find("set_timing_cache") == [("set_timing_cache", b"old", False)]
    assert cache.read_bytes() == b"old+timings" and any("saved timing cache" in m for m in messages)


def test_a_new_timing_cache_is_made_when_none_exists_or_it_does_not_match(fake_trt, fp32_export, tmp_path):
    _, state, _ = fake_trt
    cache = tmp_path / "timing.cache"
    build(fp32_export.path, tmp_path, BuildOptions(timing_cache=str(cache)))
    assert state.find("create_timing_cache") == [("create_timing_cache", b"")] and cache.read_bytes() == b"+timings"
    state.calls.clear()
    state.accept_timing_cache = False
    cache.write_bytes(b"from another gpu")
    _, messages = build(fp32_export.path, tmp_path, BuildOptions(timing_cache=str(cache)))
    assert [c[1] for c in state.find("set_timing_cache")] == [b"from another gpu", b""]
    assert any("another GPU or TensorRT version" in m for m in messages)


def test_parser_errors_are_all_reported_with_node_names(fake_trt, fp32_export, tmp_path):
    _, state, _ = fake_trt
    state.parse_errors = [
        {"desc": "unsupported", "node": 3, "node_name": "/decoder/Resize_1", "node_operator": "Resize"},
        {"desc": "bad weights", "node": 9, "node_name": "/head/Conv", "node_operator": "Conv", "code": "INVALID_NODE"},
    ]
    with pytest.raises(FakeLocatorError) as e:
        build(fp32_export.path, tmp_path)
    message = str(e.value)
    assert "2 errors" in message and "node 3 '/decoder/Resize_1' (Resize)" in message and "node 9 '/head/Conv' (Conv): INVALID_NODE" in message
    assert not (tmp_path / "model.engine").exists()


def test_a_failed_build_says_what_tensorrt_logged_and_writes_nothing(fake_trt, fp32_export, tmp_path):
    _, state, _ = fake_trt
    state.build_fails = True
    with pytest.raises(FakeLocatorError, match="could not build an engine.*out of memory while timing tactic 7"):
        build(fp32_export.path, tmp_path)
    assert not (tmp_path / "model.engine").exists() and not (tmp_path / "model.engine.json").exists()


def test_an_onnx_that_fakelocator_did_not_export_is_refused(fake_trt, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), tmp_path / "other.onnx")
    with pytest.raises(FakeLocatorError, match="no fakelocator.preprocessing"):
        build(tmp_path / "other.onnx", tmp_path)


def test_without_tensorrt_the_error_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(TensorRTMissing, match="pip install tensorrt-cu12"):
        import_tensorrt()
    ok, reason = tensorrt_available()
    assert not ok and "pypi.nvidia.com" in reason


def test_with_tensorrt_but_without_cuda_python_building_says_which_extra_to_install(fp32_export, tmp_path, monkeypatch):
    import sys

    fake_tensorrt.install(monkeypatch)
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime"):
        monkeypatch.setitem(sys.modules, name, None)  # cuda-python not installed; the real runtime.cuda stays
    with pytest.raises(FakeLocatorError, match=r"pip install 'fakelocator\[gpu\]'") as info:
        build_engine(fp32_export.path, tmp_path / "model.engine", log=lambda m: None)
    assert "\n" not in str(info.value) and not (tmp_path / "model.engine").exists()


def test_sidecar_json_is_plain_and_sorted(fake_trt, fp32_export, tmp_path):
    build(fp32_export.path, tmp_path, BuildOptions(batch=(2, 4, 8)))
    d = json.loads((tmp_path / "model.engine.json").read_text())
    assert d["profiles"] == [{"input": "image", "min": [2, 3, 64, 64], "opt": [4, 3, 64, 64], "max": [8, 3, 64, 64]}]
    assert d["options"]["batch"] == [2, 4, 8] and d["schema"] == "fakelocator.engine/1"
