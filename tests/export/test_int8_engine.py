"""INT8 through TensorRT (explicit quantization), against the FAKE tensorrt module: which file builds,
with which network flags, what the sidecar says; and Triton configs that declare the precision.
TensorRT itself never ran here (tests/export/test_tensorrt_real.py is for a GPU machine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.export.engine_spec import BuildOptions, plan_precision


def _int8(fp32_export, folder: Path, target: str) -> Path:
    import cv2

    from fakelocator.export.calibration import CalibrationConfig
    from fakelocator.export.int8 import QuantizeOptions, export_int8

    images = folder / "calibration"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(images / f"{i}.png"), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    out = folder / f"model.{target}.int8.onnx"
    export_int8(fp32_export.path, out, calibration=CalibrationConfig(tiles=4, folder=str(images)),
                options=QuantizeOptions(target=target), gate=False)
    return out


@pytest.fixture(scope="module")
def int8_files(fp32_export, tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8-engine")
    return {target: _int8(fp32_export, folder, target) for target in ("cpu", "tensorrt")}


def test_the_tensorrt_target_has_symmetric_int8_activations(int8_files):
    import onnx

    model = onnx.load(str(int8_files["tensorrt"]))
    init = {i.name: i for i in model.graph.initializer}
    zero_points = [onnx.numpy_helper.to_array(init[n.input[2]]) for n in model.graph.node
                   if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in init]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)


def test_int8_engine_is_a_strongly_typed_build_of_the_qdq_onnx(fake_trt, int8_files, tmp_path):
    from fakelocator.export.tensorrt_build import build_engine

    _, state, _ = fake_trt
    messages = []
    sidecar = build_engine(int8_files["tensorrt"], tmp_path / "model.engine", BuildOptions(precision="int8"),
                           log=messages.append)
    assert state.find("create_network") == [("create_network", 1 << 1)]  # STRONGLY_TYPED
    assert state.find("parse_from_file") == [("parse_from_file", str(int8_files["tensorrt"]))]
    assert not state.find("set_flag"), "explicit quantization: no INT8 (or FP16) builder flag"
    assert sidecar.precision == "int8" and sidecar.strongly_typed
    assert any("INT8 QDQ, explicit quantization" in m for m in messages)
    assert "--int8" in sidecar.options.cli_args()


def test_the_cpu_target_is_refused_with_the_command_that_makes_a_tensorrt_one(fake_trt, int8_files, tmp_path):
    from fakelocator.export.tensorrt_build import build_engine

    with pytest.raises(FakeLocatorError, match="--int8-target tensorrt"):
        build_engine(int8_files["cpu"], tmp_path / "model.engine", BuildOptions(), log=lambda m: None)


def test_int8_asked_of_an_fp32_onnx_or_fp16_of_an_int8_one_is_an_error():
    with pytest.raises(FakeLocatorError, match="built from an INT8 QDQ ONNX"):
        plan_precision("fp32", BuildOptions(precision="int8"), tensorrt_version="10.16", has_fp16_flag=True)
    with pytest.raises(FakeLocatorError, match="needs the fp32 export"):
        plan_precision("int8", BuildOptions(precision="fp16"), tensorrt_version="10.16", has_fp16_flag=True,
                       int8_target="tensorrt")
    plan = plan_precision("int8", BuildOptions(), tensorrt_version="11.1", has_fp16_flag=False, int8_target="tensorrt")
    assert plan.engine_precision == "int8" and plan.strongly_typed and not plan.fp16_flag


def test_triton_declares_the_precision(int8_files, fp32_export):
    from fakelocator.export.triton import describe_model

    assert describe_model(int8_files["cpu"]).parameters["fakelocator.precision"] == "int8"
    assert describe_model(fp32_export.path).parameters["fakelocator.precision"] == "fp32"


def test_export_onnx_int8_cli_without_the_gate(fp32_export, int8_files, tmp_path, capsys):
    from fakelocator.cli import main

    images = int8_files["cpu"].parent / "calibration"
    out = tmp_path / "cli.int8.onnx"
    code = main(["export", "onnx", str(fp32_export.path), "--int8", "--calibration", str(images),
                 "--calibration-tiles", "4", "--no-check", "-o", str(out)])
    assert code == 0 and out.is_file()
    assert "int8 QDQ, gate skipped" in capsys.readouterr().out
    main(["export", "check", str(out), "--batch", "1"])
    assert "accuracy gate: not run" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:  # argparse: --fp16 and --int8 exclude each other
        main(["export", "onnx", str(fp32_export.path), "--int8", "--fp16", "-o", str(tmp_path / "x.onnx")])
    assert exit_.value.code == 2
