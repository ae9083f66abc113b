"""ONNX export: one self-contained file with the contract's tensors and metadata, equal to PyTorch."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from fakelocator.errors import FakeLocatorError
from fakelocator.metadata import ModelMetadata
from fakelocator.export.onnx_export import DEFAULT_OPSET, export_onnx
from fakelocator.export.onnx_file import read_onnx_info
from fakelocator.export.parity import FP32, compare, onnxruntime_runner, standard_cases, torch_runner
from fakelocator.export.torch_graph import pooling_matrix


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_export_is_one_file_with_the_contract_tensors(fp32_export):
    path = fp32_export.path
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith("model.onnx")) == ["model.onnx"]
    model = onnx.load(str(path), load_external_data=False)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    info = read_onnx_info(path)
    assert [s.describe() for s in info.inputs] == ["image: float32 (batch, 3, 64, 64)"]
    assert [s.describe() for s in info.outputs] == [
        "map: float32 (batch, 1, 64, 64)", "score: float32 (batch, 1)", "features: float32 (batch, 32)",
    ]
    assert info.opset == fp32_export.opset == DEFAULT_OPSET
    assert fp32_export.sha256 == info.sha256 and fp32_export.precision == "fp32" and not info.dynamic_hw
    onnx.checker.check_model(str(path), full_check=True)


def test_metadata_carries_contract_config_provenance_version_precision(fp32_export, tiny_model):
    meta = read_onnx_info(fp32_export.path).require_fakelocator()
    assert meta.preprocessing == tiny_model.config.preprocessing
    assert meta.config == tiny_model.config.to_dict()
    assert meta.provenance["steps"] == 300 and meta.precision == "fp32"
    assert meta == ModelMetadata.from_props(session(fp32_export.path).get_modelmeta().custom_metadata_map)


def test_onnx_runtime_matches_pytorch_within_1e4_on_random_inputs_and_photos(fp32_export):
    report = fp32_export.parity
    assert report is not None and report.passed and report.bounds == FP32
    names = [r.case for r in report.results]
    assert any(n.startswith("photos: astronaut") for n in names) and "random normal N=1" in names
    assert report.worst("map") <= 1e-4 and report.worst("score") <= 1e-4


def test_batch_is_dynamic_and_height_width_are_not(fp32_export, tiny_model):
    s = session(fp32_export.path)
    for n in (1, 5):
        m, score, features = s.run(None, {"image": np.zeros((n, 3, 64, 64), np.float32)})
        assert m.shape == (n, 1, 64, 64) and score.shape == (n, 1) and features.shape == (n, 32)
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        s.run(None, {"image": np.zeros((1, 3, 96, 64), np.float32)})


def test_dynamic_hw_export_matches_pytorch_at_other_sizes_including_the_classifier(dynamic_export, tiny_model):
    info = read_onnx_info(dynamic_export.path)
    assert info.input().shape == ("batch", 3, "height", "width") and info.dynamic_hw
    assert dynamic_export.parity.passed and any(" at " in r.case for r in dynamic_export.parity.results)
    cases = [c for c in standard_cases(tiny_model.config.preprocessing, batch=2, real=False, extra_sizes=[(48, 80), (112, 64), (37, 77)])
             if " at " in c.name]
    report = compare(torch_runner(tiny_model), onnxruntime_runner(dynamic_export.path), cases, FP32)
    assert report.passed, report.format()


@pytest.mark.parametrize("n_in, n_out", [(4, 4), (3, 4), (7, 4), (12, 4), (1, 3), (5, 2)])
def test_the_matrix_pool_is_adaptive_average_pooling(n_in, n_out):
    x = torch.randn(2, 3, n_in, n_in + 3)
    rows = pooling_matrix(n_in, n_out, x)
    cols = pooling_matrix(n_in + 3, n_out, x)
    pooled = rows @ x @ cols.T
    torch.testing.assert_close(pooled, F.adaptive_avg_pool2d(x, (n_out, n_out)), rtol=1e-6, atol=1e-6)


def test_legacy_exporter_is_available_and_checked(tiny_checkpoint, tmp_path):
    result = export_onnx(tiny_checkpoint, tmp_path / "legacy.onnx", exporter="legacy")
    assert result.parity.passed and result.exporter == "legacy" and result.opset == DEFAULT_OPSET
    assert read_onnx_info(result.path).require_fakelocator().precision == "fp32"


def test_a_failed_check_removes_the_file(tiny_checkpoint, tmp_path, monkeypatch):
    import fakelocator.export.onnx_export as onnx_export

    monkeypatch.setattr(onnx_export, "FP32", replace(onnx_export.FP32, map_max_abs=0.0))
    target = tmp_path / "strict.onnx"
    with pytest.raises(FakeLocatorError, match="does not match PyTorch.*removed"):
        export_onnx(tiny_checkpoint, target, exporter="legacy")
    assert not target.exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(path="m.pt"), "must end in .onnx"),
        (dict(exporter="jit"), "exporter must be one of"),
        (dict(opset=13), "opset 13 is too old"),
    ],
)
def test_bad_arguments_are_refused_before_exporting(tiny_model, tmp_path, kwargs, message):
    path = tmp_path / kwargs.pop("path", "m.onnx")
    with pytest.raises(FakeLocatorError, match=message):
        export_onnx(tiny_model, path, **kwargs)


def test_export_needs_a_model_or_a_checkpoint(tmp_path):
    with pytest.raises(FakeLocatorError, match="needs a FakeLocatorNet or a checkpoint path"):
        export_onnx(42, tmp_path / "m.onnx")
    with pytest.raises(FakeLocatorError, match="no such file"):
        export_onnx(tmp_path / "missing.safetensors", tmp_path / "m.onnx")


def test_exports_use_only_ops_the_tensorrt_10_parser_supports_in_supported_forms(fp32_export, dynamic_export, fp16_export):
    lines = (Path(__file__).parent / "data" / "tensorrt10_onnx_ops.txt").read_text().splitlines()
    supported = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    for result in (fp32_export, dynamic_export, fp16_export):
        model = onnx.load(str(result.path))
        used = {n.op_type for n in model.graph.node}
        assert used <= supported, used - supported
        initializers = {i.name for i in model.graph.initializer}
        for node in model.graph.node:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "Resize":  # TensorRT: linear/nearest, no antialias, stretch
                assert attrs["mode"] == b"linear" and attrs["coordinate_transformation_mode"] == b"half_pixel"
                assert attrs.get("antialias", 0) == 0 and attrs.get("keep_aspect_ratio_policy", b"stretch") == b"stretch"
            if node.op_type.startswith("Reduce") and len(node.input) > 1:  # TensorRT: axes must be an initializer
                assert node.input[1] in initializers, node.name


@pytest.mark.parametrize("exporter", ["dynamo", "legacy"])
def test_dynamic_hw_exports_a_globally_pooled_classifier_like_the_shipped_models(tmp_path, exporter):
    """unet_res (the shipped architecture) pools globally: nothing to rewrite, both exporters work."""
    import torch

    from fakelocator.export.onnx_export import export_onnx
    from fakelocator.training.checkpoint import save_weights
    from fakelocator.training.config import ModelConfig
    from fakelocator.training.model import build_model

    torch.manual_seed(0)
    net = build_model(ModelConfig(backbone="unet_res", unet_res_widths=(4, 4, 4, 4, 4))).eval()
    save_weights(tmp_path / "res.safetensors", net)
    result = export_onnx(tmp_path / "res.safetensors", tmp_path / "res.onnx", dynamic_hw=True, exporter=exporter)
    assert result.parity.passed and any(" at " in r.case for r in result.parity.results)


def test_an_exporter_failure_is_one_plain_line_with_its_cause():
    from fakelocator.export.onnx_export import exporter_message

    try:
        try:
            raise ValueError("Constraints violated (height, width)!\n  - Not all values of width satisfy the guard")
        except ValueError as inner:
            raise RuntimeError("Failed to export the model with torch.export. \x1b[96mThis is step 1/3\x1b[0m of "
                               "exporting the model to ONNX. Next steps:") from inner
    except RuntimeError as e:
        message = exporter_message(e)
    assert message == "Constraints violated (height, width)! - Not all values of width satisfy the guard"
    assert "\x1b" not in exporter_message(RuntimeError("\x1b[96mcoloured\x1b[0m"))
