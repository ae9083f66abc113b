"""INT8 export: a QDQ graph that ONNX Runtime runs, calibrated on inputs like the runtime's, and a gate
that passes a sane calibration and refuses a broken one.

On the tiny trained network (tests/export/data): its task is a faint checkerboard rectangle on
smooth textures (``make_tiny_trained.synthetic_batch``); the gate measures on held-out items of
that task, the calibration reads a folder of such images (the ``--calibration DIR`` path) or, to
break it on purpose, a folder of constant gray images (every activation range collapses to one
value, so the real inputs clip).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError

DATA = Path(__file__).with_name("data")


def _task(seed: int, n: int):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_tiny_trained", DATA / "make_tiny_trained.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.synthetic_batch(np.random.default_rng(seed), n)


def _write_images(folder: Path, images) -> Path:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.ascontiguousarray(image[:, :, ::-1]))
    return folder


@pytest.fixture(scope="module")
def gate_items():
    from fakelocator.export.int8_gate import GateItem

    images, masks, labels = _task(seed=123, n=32)
    items = [GateItem(f"item{i}", images[i], masks[i, 0] if labels[i, 0] else None, int(labels[i, 0])) for i in range(len(images))]
    return items, "held-out checkerboard rectangles (seed 123)"


@pytest.fixture(scope="module")
def sane_folder(tmp_path_factory):
    images, _, _ = _task(seed=7, n=48)
    return _write_images(tmp_path_factory.mktemp("calibration-sane"), images)


@pytest.fixture(scope="module")
def constant_folder(tmp_path_factory):
    return _write_images(tmp_path_factory.mktemp("calibration-constant"), [np.full((64, 64, 3), 128, np.uint8)] * 8)


@pytest.fixture(scope="module")
def int8_export(fp32_export, sane_folder, gate_items, tmp_path_factory):
    from fakelocator.export.calibration import CalibrationConfig
    from fakelocator.export.int8 import export_int8

    out = tmp_path_factory.mktemp("int8") / "model.int8.onnx"
    return export_int8(fp32_export.path, out, calibration=CalibrationConfig(tiles=48, folder=str(sane_folder)),
                       gate_items=gate_items)


def test_sane_calibration_passes_the_gate(int8_export):
    assert int8_export.path.is_file()
    assert int8_export.gate is not None and int8_export.gate.passed, int8_export.gate.format()
    assert not int8_export.forced


def test_every_convolution_reads_and_writes_through_qdq(int8_export):
    import onnx

    from fakelocator.export.int8 import quantized_convs

    model = onnx.load(str(int8_export.path))
    n_conv, bare = quantized_convs(model)
    assert n_conv > 0 and bare == []
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # inputs and outputs stay float32: the runtime feeds and reads the same arrays as for fp32
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in model.graph.output)
    # the CPU target: uint8 activations (U8S8), int8 per-channel weights
    zero_points = {i.name: i for i in model.graph.initializer}
    activation_types = {zero_points[n.input[2]].data_type for n in model.graph.node
                        if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in zero_points}
    assert activation_types == {onnx.TensorProto.UINT8}


def test_metadata_round_trip(int8_export, fp32_export):
    from fakelocator.metadata import read_quantization
    from fakelocator.runtime.onnx_info import read_onnx_info

    source = read_onnx_info(fp32_export.path).require_fakelocator()
    info = read_onnx_info(int8_export.path)
    meta = info.require_fakelocator()
    assert meta.precision == "int8"
    assert meta.preprocessing == source.preprocessing and meta.threshold == source.threshold
    record = read_quantization(info.props)
    assert record["format"] == "QDQ" and record["target"] == "cpu"
    assert record["activations"].startswith("uint8") and "per channel" in record["weights"]
    assert record["calibration"]["tiles"] == 48 and record["calibration"]["method"] == "minmax"
    assert record["calibration"]["seed"] == 0
    assert record["source"]["sha256"] == read_onnx_info(fp32_export.path).sha256
    gate = record["gate"]
    assert gate["passed"] and not gate["forced"]
    assert set(gate["fp32"]) == {"pixel_auc", "coss", "detection_auc"}
    assert json.loads(json.dumps(gate)) == gate


def test_runtime_runs_it_like_any_onnx(int8_export, gate_items):
    from fakelocator.runtime import Locator

    with Locator.load(str(int8_export.path), device="cpu") as locator:
        assert locator.info.precision == "int8"
        result = locator.locate(gate_items[0][1].image, color_order="RGB")
    assert result.map.shape == gate_items[0][1].image.shape[:2]
    assert 0.0 <= result.score <= 1.0


def test_constant_calibration_is_refused_and_nothing_is_written(fp32_export, constant_folder, gate_items, tmp_path):
    from fakelocator.export.calibration import CalibrationConfig
    from fakelocator.export.int8 import export_int8

    out = tmp_path / "broken.int8.onnx"
    with pytest.raises(FakeLocatorError, match="loses more than the gate allows"):
        export_int8(fp32_export.path, out, calibration=CalibrationConfig(tiles=8, folder=str(constant_folder)),
                    gate_items=gate_items)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind either


def test_force_writes_a_failed_model_and_records_the_failure(fp32_export, constant_folder, gate_items, tmp_path):
    from fakelocator.export.calibration import CalibrationConfig
    from fakelocator.export.int8 import export_int8
    from fakelocator.metadata import read_quantization
    from fakelocator.runtime.onnx_info import read_onnx_info

    out = tmp_path / "forced.int8.onnx"
    result = export_int8(fp32_export.path, out, calibration=CalibrationConfig(tiles=8, folder=str(constant_folder)),
                         gate_items=gate_items, force=True)
    assert result.forced and out.is_file()
    gate = read_quantization(read_onnx_info(out).props)["gate"]
    assert gate["forced"] and not gate["passed"] and gate["failures"]


def test_only_an_fp32_source_is_quantized(int8_export, tmp_path):
    from fakelocator.export.int8 import export_int8

    with pytest.raises(FakeLocatorError, match="quantize the fp32 export"):
        export_int8(int8_export.path, tmp_path / "again.int8.onnx", gate=False)


def test_calibration_inputs_are_seeded_and_follow_the_contract(sane_folder):
    from fakelocator.contract import Preprocessing
    from fakelocator.export.calibration import CalibrationConfig, calibration_set

    native = Preprocessing(height=32, width=32, analysis="native", tile_overlap=8)
    a = calibration_set(native, CalibrationConfig(tiles=6, seed=3, folder=str(sane_folder)))
    b = calibration_set(native, CalibrationConfig(tiles=6, seed=3, folder=str(sane_folder)))
    c = calibration_set(native, CalibrationConfig(tiles=6, seed=4, folder=str(sane_folder)))
    assert a.inputs.shape == (6, 3, 32, 32) and a.inputs.dtype == np.float32
    np.testing.assert_array_equal(a.inputs, b.inputs)
    assert not np.array_equal(a.inputs, c.inputs)  # other windows
    assert a.describe()["analysis"] == "native" and a.describe()["tiles"] == 6


def test_bad_calibration_options_name_the_problem(tmp_path):
    from fakelocator.export.calibration import CalibrationConfig, calibration_set
    from fakelocator.contract import Preprocessing

    with pytest.raises(FakeLocatorError, match="calibration method"):
        CalibrationConfig(method="histogram")
    with pytest.raises(FakeLocatorError, match="positive integer"):
        CalibrationConfig(tiles=0)
    with pytest.raises(FakeLocatorError, match="no images"):
        calibration_set(Preprocessing(height=32, width=32), CalibrationConfig(folder=str(tmp_path)))


def test_export_check_prints_the_gate(int8_export, capsys):
    from fakelocator.cli import main

    main(["export", "check", str(int8_export.path), "--batch", "2"])
    out = capsys.readouterr().out
    assert "precision int8" in out and "quantization: QDQ for cpu" in out
    assert "accuracy gate" in out and "PASS" in out
