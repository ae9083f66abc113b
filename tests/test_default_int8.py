"""The shipped INT8 companion of the default model, whatever its weights: made from the model.onnx
beside it (a retrained model.onnx needs `scripts/export-default-int8` rerun), gated, and run by
`--precision int8` like any ONNX."""

from __future__ import annotations

import numpy as np
import pytest

from fakelocator.metadata import read_quantization
from fakelocator.runtime.locator import default_model_path
from fakelocator.runtime.onnx_info import read_onnx_info

INT8 = default_model_path().with_name("model.int8.onnx")
pytestmark = pytest.mark.skipif(not INT8.is_file(), reason="no model.int8.onnx shipped (scripts/export-default-int8 makes it)")


def test_it_is_the_quantization_of_the_shipped_fp32_model_and_passed_its_gate():
    info = read_onnx_info(INT8)
    fp32 = read_onnx_info(default_model_path())
    assert info.precision == "int8"
    record = read_quantization(info.props)
    assert record["source"]["sha256"] == fp32.sha256, (
        "model.int8.onnx was quantized from another model.onnx: rerun scripts/export-default-int8")
    assert record["target"] == "cpu" and record["calibration"]["analysis"] == "native"
    assert record["gate"]["passed"] and not record["gate"]["forced"]
    meta, ref = info.require_fakelocator(), fp32.require_fakelocator()
    assert meta.preprocessing == ref.preprocessing and meta.threshold == ref.threshold


def test_precision_int8_runs_it_and_it_maps_like_fp32():
    from fakelocator.runtime import Locator

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)
    with Locator.load(device="cpu", precision="fp32") as fp32, Locator.load(device="cpu", precision="int8") as int8:
        assert int8.info.precision == "int8" and fp32.info.precision == "fp32"
        a, b = fp32.locate(image), int8.locate(image)
    assert b.map.shape == a.map.shape == (300, 420)
    assert float(np.abs(a.map - b.map).mean()) < 0.05
