"""Triton model repositories, read back with Triton's own model-config protobuf.

Serving them in a real Triton server is tests/serving/test_triton_server.py."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.engine_sidecar import BuildOptions, EngineSidecar, ShapeProfile, sidecar_path
from fakelocator.export.onnx_file import read_onnx_info
from fakelocator.export.triton import TritonOptions, write_repository

Config = model_config_pb2.ModelConfig
FP32 = model_config_pb2.DataType.Value("TYPE_FP32")


def parse(folder: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse((folder / "config.pbtxt").read_text(), Config())


def onnx_dims(spec):
    return [d if isinstance(d, int) else -1 for d in spec.shape[1:]]


NETWORK_ONLY = TritonOptions(pipeline=False)
ONNX_NETWORK_ONLY = TritonOptions(pipeline=False, model_backend="onnxruntime")  # Triton's own onnxruntime backend


def test_onnx_repository_declares_the_onnx_tensors(fp32_export, tmp_path):
    folder = write_repository(fp32_export.path, tmp_path / "repo", ONNX_NETWORK_ONLY)
    assert folder == tmp_path / "repo" / "fakelocator" and not (tmp_path / "repo" / "fakelocator_model").exists()
    assert (folder / "1" / "model.onnx").read_bytes() == fp32_export.path.read_bytes()
    config = parse(folder)
    info = read_onnx_info(fp32_export.path)
    assert config.name == "fakelocator" and config.backend == "onnxruntime" and config.max_batch_size == 32
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [("image", FP32, onnx_dims(info.input()))]
    assert [(t.name, t.data_type, list(t.dims)) for t in config.output] == [(s.name, FP32, onnx_dims(s)) for s in info.outputs]
    assert list(config.dynamic_batching.preferred_batch_size) == []
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    # an ONNX without declared GPUs runs on the CPU
    assert [(g.kind, g.count) for g in config.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_CPU, 1)]
    warmup = config.model_warmup[0]
    assert warmup.batch_size == 1 and warmup.inputs["image"].random_data and list(warmup.inputs["image"].dims) == [3, 64, 64]
    contract = config.parameters["fakelocator.preprocessing"].string_value
    assert contract == read_onnx_info(fp32_export.path).require_fakelocator().preprocessing.to_json()


def test_dynamic_hw_is_declared_as_minus_one_and_warmed_up_at_the_contract_size(dynamic_export, tmp_path):
    config = parse(write_repository(dynamic_export.path, tmp_path, ONNX_NETWORK_ONLY))
    assert list(config.input[0].dims) == [3, -1, -1] and list(config.output[0].dims) == [1, -1, -1]
    assert list(config.model_warmup[0].inputs["image"].dims) == [3, 64, 64]


def test_options_reach_the_config(fp16_export, tmp_path):
    options = TritonOptions(name="locator_fp16", max_batch_size=16, preferred_batch_sizes=(4, 16), max_queue_delay_us=500,
                            instance_kind="cpu", instance_count=3, warmup=False, version=7, features=False, pipeline=False,
                            model_backend="onnxruntime")
    folder = write_repository(fp16_export.path, tmp_path, options)
    config = parse(folder)
    assert (folder / "7" / "model.onnx").is_file()
    assert config.name == "locator_fp16" and config.max_batch_size == 16
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 16]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert [(g.kind, g.count) for g in config.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_CPU, 3)]
    assert not config.model_warmup and [t.name for t in config.output] == ["map", "score"]


def test_an_onnx_goes_to_the_python_backend_on_the_cpu_and_to_onnxruntime_on_gpus(fp32_export):
    from fakelocator.export.triton import describe_model, network_backend

    model = describe_model(fp32_export.path)
    assert network_backend(model, TritonOptions()) == "python"  # every Triton has it, `fakelocator serve`'s included
    assert network_backend(model, TritonOptions(gpus=(0,))) == "onnxruntime"
    assert network_backend(model, TritonOptions(instance_kind="gpu")) == "onnxruntime"
    assert network_backend(model, TritonOptions(model_backend="onnxruntime")) == "onnxruntime"


def test_gpus_are_listed_per_group(fp32_export, tmp_path):
    config = parse(write_repository(fp32_export.path, tmp_path, TritonOptions(gpus=(0, 2), instance_count=2, pipeline=False)))
    group = config.instance_group[0]
    assert list(group.gpus) == [0, 2] and group.count == 2 and group.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU


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
    folder = write_repository(engine, tmp_path / "repo", NETWORK_ONLY)
    config = parse(folder)
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
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
        ((4, 8, 32), TritonOptions(), "rebuild with --batch-range 1,8,32"),
        ((1, 8, 32), TritonOptions(preferred_batch_sizes=(8, 40)), r"preferred batch sizes \[40\]"),
    ],
)
def test_configs_the_plan_cannot_serve_are_refused(fp32_export, tmp_path, profile, options, message):
    with pytest.raises(FakeLocatorError, match=message):
        write_repository(fake_plan(tmp_path, fp32_export, profile), tmp_path / "repo", replace(options, pipeline=False))


def test_cpu_instances_take_no_gpus_and_an_existing_model_is_kept(fp32_export, tmp_path):
    with pytest.raises(FakeLocatorError, match="gpus apply to GPU instances only"):
        write_repository(fp32_export.path, tmp_path, TritonOptions(instance_kind="cpu", gpus=(0,)))
    write_repository(fp32_export.path, tmp_path, NETWORK_ONLY)
    with pytest.raises(FakeLocatorError, match="already holds a model"):
        write_repository(fp32_export.path, tmp_path, NETWORK_ONLY)
    write_repository(fp32_export.path, tmp_path, replace(NETWORK_ONLY, max_queue_delay_us=1), overwrite=True)
    assert parse(tmp_path / "fakelocator").dynamic_batching.max_queue_delay_microseconds == 1


def test_the_client_example_builds_a_request_from_the_served_contract(fp32_export):
    import triton_client as example  # examples/ is on the tests' path (pyproject.toml)

    contract = read_onnx_info(fp32_export.path).require_fakelocator().preprocessing
    images = [np.zeros((120, 90, 3), np.uint8), np.full((30, 40, 3), 255, np.uint8)]
    inputs, outputs = example.build_inputs(images, contract)
    assert inputs[0].name() == "image" and inputs[0].shape() == [2, 3, 64, 64] and inputs[0].datatype() == "FP32"
    assert [o.name() for o in outputs] == ["map", "score"]


# ---- the server-side pipeline ---------------------------------------------------------------------

STRING = model_config_pb2.DataType.Value("TYPE_STRING")
UINT8 = model_config_pb2.DataType.Value("TYPE_UINT8")
FP16 = model_config_pb2.DataType.Value("TYPE_FP16")
INT32 = model_config_pb2.DataType.Value("TYPE_INT32")


def test_the_pipeline_takes_encoded_images_and_sends_batches_to_the_network(fp32_export, tmp_path):
    folder = write_repository(fp32_export.path, tmp_path, TritonOptions(pipeline_instances=2, pipeline_max_batch=8))
    assert folder == tmp_path / "fakelocator"
    pipeline, network = parse(folder), parse(tmp_path / "fakelocator_model")
    assert pipeline.name == "fakelocator" and pipeline.backend == "python" and pipeline.max_batch_size == 8
    assert [(t.name, t.data_type, list(t.dims)) for t in pipeline.input] == [("image", STRING, [1])]
    assert [(t.name, t.data_type, list(t.dims)) for t in pipeline.output] == [
        ("map", UINT8, [-1, -1]), ("shape", INT32, [2]), ("score", FP32, [1]), ("label", STRING, [1]), ("error", STRING, [1])]
    assert pipeline.HasField("dynamic_batching") and pipeline.dynamic_batching.max_queue_delay_microseconds == 5000
    assert [(g.kind, g.count) for g in pipeline.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_CPU, 2)]
    params = {k: v.string_value for k, v in pipeline.parameters.items()}
    assert params["fakelocator.network_model"] == "fakelocator_model" and params["fakelocator.network_max_batch"] == "32"
    assert params["fakelocator.preprocessing"] == network.parameters["fakelocator.preprocessing"].string_value
    assert params["fakelocator.map_dtype"] == "uint8" and float(params["fakelocator.threshold"]) == 0.5
    assert params["fakelocator.analysis"] == "" and params["fakelocator.max_tiles"] == ""  # the model's, the runtime's
    source = (folder / "1" / "model.py").read_text()
    compile(source, "model.py", "exec")  # a valid module, importing the runtime's model class
    assert "from fakelocator.runtime.triton_models import PipelineModel as TritonPythonModel" in source
    # the network beside it is today's model, unchanged, on the Python backend by default on the CPU (the
    # backend of the server `fakelocator serve` brings, which has no onnxruntime backend)
    assert network.name == "fakelocator_model" and network.backend == "python" and network.max_batch_size == 32
    assert (tmp_path / "fakelocator_model" / "1" / "model.onnx").read_bytes() == fp32_export.path.read_bytes()


def test_python_model_backend_runs_the_onnx_in_the_python_backend(fp16_export, tmp_path):
    options = TritonOptions(model_backend="python", map_dtype="float16", threads=2, max_batch_size=8, preferred_batch_sizes=(4, 8))
    write_repository(fp16_export.path, tmp_path, options)
    network, pipeline = parse(tmp_path / "fakelocator_model"), parse(tmp_path / "fakelocator")
    version = tmp_path / "fakelocator_model" / "1"
    assert network.backend == "python" and not network.default_model_filename
    assert (version / "model.onnx").read_bytes() == fp16_export.path.read_bytes()
    assert "import NetworkModel as TritonPythonModel" in (version / "model.py").read_text()
    assert network.parameters["fakelocator.model_file"].string_value == "model.onnx"
    assert network.parameters["fakelocator.threads"].string_value == "2"
    assert network.input[0].data_type == FP32  # the runtime's backend casts to the ONNX's own input type
    assert list(network.dynamic_batching.preferred_batch_size) == [4, 8]
    assert pipeline.output[0].data_type == FP16 and pipeline.parameters["fakelocator.network_max_batch"].string_value == "8"


def test_no_dynamic_batching_writes_no_batcher(fp32_export, tmp_path):
    write_repository(fp32_export.path, tmp_path, TritonOptions(dynamic_batching=False))
    assert not parse(tmp_path / "fakelocator").HasField("dynamic_batching")
    assert not parse(tmp_path / "fakelocator_model").HasField("dynamic_batching")


@pytest.mark.parametrize("options, message", [
    (TritonOptions(model_backend="tensorrt"), "the tensorrt backend serves plans"),
    (TritonOptions(model_backend="torch"), "model backend must be one of"),
    (TritonOptions(map_dtype="float32"), "map dtype must be one of"),
    (TritonOptions(pipeline_max_batch=0), "pipeline instances and max batch"),
    (TritonOptions(threshold=1.5), r"threshold must be in \[0, 1\]"),
    (TritonOptions(analysis="native", tile_overlap=40), "tile_overlap must be an integer in"),
    (TritonOptions(analysis="sideways"), "analysis must be one of"),
])
def test_pipeline_options_are_checked(fp32_export, tmp_path, options, message):
    with pytest.raises(FakeLocatorError, match=message):
        write_repository(fp32_export.path, tmp_path, options)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_a_plan_is_served_by_the_tensorrt_backend_only(fp32_export, tmp_path):
    with pytest.raises(FakeLocatorError, match="tensorrt backend only"):
        write_repository(fake_plan(tmp_path, fp32_export), tmp_path / "repo", TritonOptions(model_backend="python"))
    folder = write_repository(fake_plan(tmp_path, fp32_export), tmp_path / "repo")
    assert parse(folder).parameters["fakelocator.network_input_dtype"].string_value == "TYPE_FP32"
    assert (tmp_path / "repo" / "fakelocator_model" / "engine.json").is_file()


def test_overwrite_replaces_both_models_and_drops_stale_files(fp32_export, tmp_path):
    write_repository(fp32_export.path, tmp_path, TritonOptions(model_backend="python"))
    with pytest.raises(FakeLocatorError, match="already holds a model"):
        write_repository(fp32_export.path, tmp_path)
    write_repository(fp32_export.path, tmp_path, TritonOptions(model_backend="onnxruntime"), overwrite=True)
    assert parse(tmp_path / "fakelocator_model").backend == "onnxruntime"
    assert not (tmp_path / "fakelocator_model" / "1" / "model.py").exists()
