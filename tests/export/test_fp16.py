"""Mixed precision: fp16 inside, fp32 at the edges, Resize in fp32, within the documented bound of fp32 PyTorch."""

import numpy as np
import onnx
import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.export.fp16 import convert_file_to_fp16, fp32_ops, is_fp16
from fakelocator.export.onnx_file import read_onnx_info
from fakelocator.export.parity import FP16, compare, onnxruntime_runner, standard_cases, torch_runner


def value_types(path):
    """Element type of every tensor in the graph, after shape inference."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.input, *model.graph.output]}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    return model, types


def test_fp16_export_keeps_fp32_inputs_and_outputs_and_says_fp16(fp16_export, fp32_export):
    info = read_onnx_info(fp16_export.path)
    assert [s.dtype for s in (*info.inputs, *info.outputs)] == ["float32"] * 4
    assert info.precision == read_onnx_info(fp16_export.path).require_fakelocator().precision == "fp16" == fp16_export.precision
    assert is_fp16(onnx.load(str(fp16_export.path)))
    assert fp16_export.size < 0.8 * fp32_export.size  # weights stored in fp16
    onnx.checker.check_model(str(fp16_export.path), full_check=True)


def test_convolutions_run_in_fp16_and_resize_in_fp32(fp16_export):
    model, types = value_types(fp16_export.path)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    resizes = [n for n in model.graph.node if n.op_type == "Resize"]
    assert convs and resizes and "Resize" in fp32_ops()
    assert all(types[n.input[1]] == onnx.TensorProto.FLOAT16 for n in convs)
    assert all(types[n.input[0]] == types[n.output[0]] == onnx.TensorProto.FLOAT for n in resizes)


def test_fp16_is_within_the_documented_bound_of_fp32_pytorch_on_a_trained_model(fp16_export, tiny_model):
    report = fp16_export.parity
    assert report.passed and report.bounds == FP16
    assert report.worst("map", "cosine") >= 0.999 and report.worst("map") <= 1e-2 and report.worst("score") <= 1e-2
    # what was measured when the bound was set (docs/export.md): about 5e-4 on ONNX Runtime's CPU provider
    assert report.worst("map") < 2e-3


def test_converting_an_fp32_file_gives_the_same_kind_of_model(fp32_export, tmp_path, tiny_model):
    out = convert_file_to_fp16(fp32_export.path, tmp_path / "converted.onnx")
    meta = read_onnx_info(out).require_fakelocator()
    assert meta.precision == "fp16" and meta.config == read_onnx_info(fp32_export.path).require_fakelocator().config
    cases = standard_cases(tiny_model.config.preprocessing, batch=2)
    assert compare(torch_runner(tiny_model), onnxruntime_runner(out), cases, FP16).passed


def test_an_fp16_model_is_not_converted_twice(fp16_export, tmp_path):
    with pytest.raises(FakeLocatorError, match="already holds fp16"):
        convert_file_to_fp16(fp16_export.path, tmp_path / "twice.onnx")


def test_onnx_runtime_runs_the_fp16_model_at_any_batch(fp16_export):
    runner = onnxruntime_runner(fp16_export.path)
    out = runner(np.zeros((4, 3, 64, 64), np.float32))
    assert out["map"].dtype == np.float32 and out["map"].shape == (4, 1, 64, 64)
