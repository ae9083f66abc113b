"""`fakelocator bench --precision int8`: the model's .int8.onnx companion gets its own rows, with the
images/s ratio to the fp32 row of the same backend, input and batch (what the numbers are is not
tested: a benchmark is not a test)."""

from __future__ import annotations

import json
import shutil

import numpy as np

from fakelocator.cli import main


def _with_int8_companion(mean_model, tmp_path):
    """model.onnx and model.int8.onnx side by side (calibrated on random images; no gate: the mean model is untrained)."""
    import cv2

    from fakelocator.export.calibration import CalibrationConfig
    from fakelocator.export.int8 import export_int8

    folder = tmp_path / "models"
    folder.mkdir()
    model = shutil.copy(mean_model, folder / "model.onnx")
    images = tmp_path / "calibration"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(images / f"{i}.png"), rng.integers(0, 256, (48, 40, 3), dtype=np.uint8))
    export_int8(model, folder / "model.int8.onnx", calibration=CalibrationConfig(tiles=4, folder=str(images)), gate=False)
    return folder / "model.onnx"


def test_bench_prints_an_int8_row_with_its_ratio_to_fp32(mean_model, tmp_path, capsys):
    model = _with_int8_companion(mean_model, tmp_path)
    out = tmp_path / "results"
    code = main(["bench", "--model", str(model), "--precision", "fp32,int8", "--backend", "onnxruntime", "--batch", "2",
                 "--inputs", "direct224", "--iterations", "2", "--min-images", "0", "--warmup", "1", "--no-baseline",
                 "--memory-run", "0", "--pool", "2", "--device", "cpu", "--no-stages", "--out", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "× fp32" in table
    assert "| direct224 | onnxruntime | int8 | cpu | fit | 2 |" in table
    runs = json.loads((out / "bench.json").read_text())["runs"]
    by_precision = {r["precision"]: r for r in runs}
    assert set(by_precision) == {"fp32", "int8"}
    assert by_precision["int8"]["model"].endswith("model.int8.onnx")
    ratio = by_precision["int8"]["end_to_end"]["images_per_s"] / by_precision["fp32"]["end_to_end"]["images_per_s"]
    assert abs(by_precision["int8"]["vs_fp32"] - ratio) < 1e-9 and by_precision["fp32"]["vs_fp32"] is None


def test_int8_without_a_companion_is_skipped_with_the_command_that_makes_one(mean_model, tmp_path, capsys):
    code = main(["bench", "--model", str(mean_model), "--precision", "int8", "--batch", "1", "--inputs", "direct224",
                 "--iterations", "1", "--min-images", "0", "--warmup", "0", "--no-baseline", "--memory-run", "0",
                 "--pool", "1", "--device", "cpu", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "no int8 ONNX file" in capsys.readouterr().err
