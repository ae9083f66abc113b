"""Triton model repositories, read back with Triton's own model-config protobuf."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from fakelocator.errors import FakeLocatorError
from fakelocator.export.engine_spec import BuildOptions, EngineSidecar, ShapeProfile, sidecar_path
from fakelocator.export.onnx_file import read_onnx_info
from fakelocator.export.triton import TritonOptions, write_repository

Config = model_config_pb2.ModelConfig
FP32 = model_config_pb2.DataType.Value("TYPE_FP32")


def parse(folder: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse((folder / "config.pbtxt").read_text(), Config())


def onnx_dims(spec):
    return [d if isinstance(d, int) else -1 for d in spec.shape[1:]]


def test_onnx_repository_declares_the_onnx_tensors(fp32_export, tmp_path):
    folder = write_repository(fp32_export.path, tmp_path / "repo")
    assert folder == tmp_path / "repo" / "fakelocator"
    assert (folder / "1" / "model.onnx").read_bytes() == fp32_export.path.read_bytes()
    config = parse(folder)
    info = read_onnx_info(fp32_export.path)
    assert config.name == "fakelocator" and config.backend == "onnxruntime" and config.max_batch_size == 32
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [("image", FP32, onnx_dims(info.input()))]
    assert [(t.name, t.data_type, list(t.dims)) for t in config.output] == [(s.name, FP32, onnx_dims(s)) for s in info.outputs]
    assert list(config.dynamic_batching.preferred_batch_size) == []
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert [(g.kind, g.count) for g in config.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_GPU, 1)]
    warmup = config.model_warmup[0]
    assert warmup.batch_size == 1 and warmup.inputs["image"].random_data and list(warmup.inputs["image"].dims) == [3, 64, 64]
    contract = config.parameters["fakelocator.preprocessing"].string_value
    assert contract == read_onnx_info(fp32_export.path).require_fakelocator().preprocessing.to_json()


def test_dynamic_hw_is_declared_as_minus_one_and_warmed_up_at_the_contract_size(dynamic_export, tmp_path):
    config = parse(write_repository(dynamic_export.path, tmp_path))
    assert list(config.input[0].dims) == [3, -1, -1] and list(config.output[0].dims) == [1, -1, -1]
    assert list(config.model_warmup[0].inputs["image"].dims) == [3, 64, 64]


def test_options_reach_the_config(fp16_export, tmp_path):
    options = TritonOptions(name="locator_fp16", max_batch_size=16, preferred_batch_sizes=(4, 16), max_queue_delay_us=500,
                            instance_kind="cpu", instance_count=3, warmup=False, version=7, features=False)
    folder = write_repository(fp16_export.path, tmp_path, options)
    config = parse(folder)
    assert (folder / "7" / "model.onnx").is_file()
    assert config.name == "locator_fp16" and config.max_batch_size == 16
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 16]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert [(g.kind, g.count) for g in config.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_CPU, 3)]
    assert not config.model_warmup and [t.name for t in config.output] == ["map", "score"]


def test_gpus_are_listed_per_group(fp32_export, tmp_path):
    config = parse(write_repository(fp32_export.path, tmp_path, TritonOptions(gpus=(0, 2), instance_count=2)))
    assert list(config.instance_group[0].gpus) == [0, 2] and config.instance_group[0].count == 2


def fake_plan(tmp_path: Path, fp32_export, profile=(1, 8, 32)) -> Path:
    """A plan file and sidecar as the builder writes them (the plan's bytes do not matter to Triton's config)."""
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"plan")
    lo, opt, hi = profile
    sidecar = EngineSidecar(
        tensorrt_version="10.16.1.11", gpu_name="NVIDIA L4", compute_capability=(8, 9), precision="fp16",
        strongly_typed=True, profiles=(ShapeProfile("image", (lo, 3, 64, 64), (opt, 3, 64, 64), (hi, 3, 64, 64)),),
        onnx_path=str(fp32_export.path), onnx_sha256=fp32_export.sha256, engine_sha256="00",
        preprocessing=read_onnx_info(fp32_export.path).require_fakelocator().preprocessing.to_dict(), model_config={"unet_width": 4},
        options=BuildOptions(batch=profile),
        io=tuple({"name": n, "mode": m, "dtype": "float32", "shape": s} for n, m, s in [
            ("image", "input", [-1, 3, 64, 64]), ("map", "output", [-1, 1, 64, 64]),
            ("score", "output", [-1, 1]), ("features", "output", [-1, 32])]),
    )
    sidecar.write(sidecar_path(engine))
    return engine


def test_plan_repository_uses_the_tensorrt_backend_and_the_profile(fp32_export, tmp_path):
    engine = fake_plan(tmp_path, fp32_export)
    folder = write_repository(engine, tmp_path / "repo")
    config = parse(folder)
    assert config.backend == "tensorrt" and config.default_model_filename == "model.plan"
    assert (folder / "1" / "model.plan").read_bytes() == b"plan"
    assert json.loads((folder / "engine.json").read_text())["tensorrt_version"] == "10.16.1.11"
    assert config.max_batch_size == 32 and list(config.dynamic_batching.preferred_batch_size) == [8, 32]
    assert [list(t.dims) for t in config.output] == [[1, 64, 64], [1], [32]]
    assert config.parameters["fakelocator.tensorrt_version"].string_value == "10.16.1.11"


@pytest.mark.parametrize(
    "profile, options, message",
    [
        ((1, 8, 32), TritonOptions(instance_kind="cpu"), "runs on GPUs only"),
        ((1, 8, 32), TritonOptions(max_batch_size=64), "exceeds the engine profile's max batch 32"),
        ((4, 8, 32), TritonOptions(), "rebuild with --batch 1,8,32"),
        ((1, 8, 32), TritonOptions(preferred_batch_sizes=(8, 40)), r"preferred batch sizes \[40\]"),
    ],
)
def test_configs_the_plan_cannot_serve_are_refused(fp32_export, tmp_path, profile, options, message):
    with pytest.raises(FakeLocatorError, match=message):
        write_repository(fake_plan(tmp_path, fp32_export, profile), tmp_path / "repo", options)


def test_cpu_instances_take_no_gpus_and_an_existing_model_is_kept(fp32_export, tmp_path):
    with pytest.raises(FakeLocatorError, match="gpus apply to GPU instances only"):
        write_repository(fp32_export.path, tmp_path, TritonOptions(instance_kind="cpu", gpus=(0,)))
    write_repository(fp32_export.path, tmp_path)
    with pytest.raises(FakeLocatorError, match="already holds a model"):
        write_repository(fp32_export.path, tmp_path)
    write_repository(fp32_export.path, tmp_path, replace(TritonOptions(), max_queue_delay_us=1), overwrite=True)
    assert parse(tmp_path / "fakelocator").dynamic_batching.max_queue_delay_microseconds == 1


def test_the_client_example_builds_a_request_from_the_served_contract(fp32_export):
    import triton_client as example  # examples/ is on the tests' path (pyproject.toml)

    contract = read_onnx_info(fp32_export.path).require_fakelocator().preprocessing
    images = [np.zeros((120, 90, 3), np.uint8), np.full((30, 40, 3), 255, np.uint8)]
    inputs, outputs = example.build_inputs(images, contract)
    assert inputs[0].name() == "image" and inputs[0].shape() == [2, 3, 64, 64] and inputs[0].datatype() == "FP32"
    assert [o.name() for o in outputs] == ["map", "score"]
