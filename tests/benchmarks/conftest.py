"""Fixtures of the benchmark tests: tiny models and a fake clock.

These tests check the benchmark machinery (fields, warm-up, percentiles, FLOP counts, files), never
the speed of anything: a benchmark is not a test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fakelocator.contract import Preprocessing

TINY_CHECKPOINT = Path(__file__).parents[1] / "export" / "data" / "tiny_trained.safetensors"  # unet_lite width 4, 64×64


class FakeClock:
    """A clock that only moves when told: ``advance(ms)``; callable like ``time.perf_counter``."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, ms: float) -> None:
        self.t += ms / 1000


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def metadata(contract: Preprocessing, config: dict) -> dict[str, str]:
    return {
        "fakelocator.preprocessing": contract.to_json(),
        "fakelocator.model_config": json.dumps(config),
        "fakelocator.provenance": json.dumps({"made_by": "tests/benchmarks/conftest.py"}),
        "fakelocator.version": "test",
        "fakelocator.precision": "fp32",
    }


def build_mean_model(path: Path, size: int = 32) -> Path:
    """A torch-free model of the exported contract: map = sigmoid(mean over channels), one 1×1 Conv."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    contract = Preprocessing(height=size, width=size)
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["map"]),
        helper.make_node("GlobalAveragePool", ["map"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["score"], axis=1),
        helper.make_node("GlobalAveragePool", ["image"], ["pooled_image"]),
        helper.make_node("Flatten", ["pooled_image"], ["features"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "mean",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("map", TensorProto.FLOAT, ["N", 1, size, size]),
         helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1]),
         helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(np.full((1, 3, 1, 1), 1 / 3, np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    helper.set_model_props(model, metadata(contract, {"backbone": "mean-test"}))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def mean_model(tmp_path_factory) -> Path:
    return build_mean_model(tmp_path_factory.mktemp("bench_mean") / "model.onnx")


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory) -> tuple[Path, Path]:
    """(model.onnx, model.safetensors): the tiny trained unet_lite and its ONNX export, side by side."""
    pytest.importorskip("torch")
    from fakelocator.export.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("bench_tiny")
    checkpoint = folder / "model.safetensors"
    shutil.copy(TINY_CHECKPOINT, checkpoint)
    export_onnx(checkpoint, folder / "model.onnx", check=False, exporter="legacy")
    return folder / "model.onnx", checkpoint
