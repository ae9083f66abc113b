"""Hand-made ONNX models of the exported contract, whose outputs can be computed by hand.

Both follow the export's I/O (``fakelocator.model_io``: input ``image`` (N, 3, size, size); outputs
``map``, ``score`` and, optionally, ``features``) and carry the ``fakelocator.*`` metadata, so the
runtime loads them as it loads an export; they need onnx, not torch.

- the *red* model: map ``sigmoid(4 · (r − 1))`` with ``r`` the normalized red channel (a 3×3 Conv
  with one non-zero weight), score the map's maximum, features the channel means of the input; a
  pure red area maps to ~1, anything without red to ~0.02;
- the *mean* model: map ``sigmoid(mean over channels)`` (one 1×1 Conv), score the map's mean.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fakelocator.contract import Preprocessing


def contract(size: int = 32) -> Preprocessing:
    return Preprocessing(height=size, width=size)


def _save(path: Path, name: str, nodes, initializers, *, size, batch, features, precision, backbone) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    outputs = [
        helper.make_tensor_value_info("map", TensorProto.FLOAT, [batch, 1, size, size]),
        helper.make_tensor_value_info("score", TensorProto.FLOAT, [batch, 1]),
    ]
    if features:
        nodes = nodes + [
            helper.make_node("GlobalAveragePool", ["image"], ["pooled_image"]),
            helper.make_node("Flatten", ["pooled_image"], ["features"], axis=1),
        ]
        outputs.append(helper.make_tensor_value_info("features", TensorProto.FLOAT, [batch, 3]))
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, size, size])], outputs,
        initializer=[numpy_helper.from_array(value, key) for key, value in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    helper.set_model_props(model, {
        "fakelocator.preprocessing": contract(size).to_json(),
        "fakelocator.model_config": json.dumps({"backbone": backbone}),
        "fakelocator.provenance": json.dumps({"made_by": "tests/helpers/models.py"}),
        "fakelocator.version": "test",
        "fakelocator.precision": precision,
    })
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return Path(path)


def build_red_model(
    path: Path, *, size: int = 32, batch: int | str = "N", precision: str = "fp32", features: bool = True
) -> Path:
    """Write the red-detecting model; ``batch`` an int gives a static batch axis; ``precision`` is only its metadata."""
    from onnx import helper

    weight = np.zeros((1, 3, 3, 3), np.float32)
    weight[0, 0, 1, 1] = 4.0  # channel 0 is red: the contract's order is RGB
    nodes = [
        helper.make_node("Conv", ["image", "w", "b"], ["logits"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["logits"], ["map"]),
        helper.make_node("GlobalMaxPool", ["map"], ["peak"]),
        helper.make_node("Flatten", ["peak"], ["score"], axis=1),
    ]
    return _save(path, "red", nodes, {"w": weight, "b": np.array([-4.0], np.float32)}, size=size, batch=batch,
                 features=features, precision=precision, backbone="red-test")


def build_mean_model(path: Path, size: int = 32) -> Path:
    """Write the mean model: map = sigmoid(mean over channels), score its mean."""
    from onnx import helper

    nodes = [
        helper.make_node("Conv", ["image", "w"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["map"]),
        helper.make_node("GlobalAveragePool", ["map"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["score"], axis=1),
    ]
    return _save(path, "mean", nodes, {"w": np.full((1, 3, 1, 1), 1 / 3, np.float32)}, size=size, batch="N",
                 features=True, precision="fp32", backbone="mean-test")


def with_threshold(source: Path, path: Path, threshold: float) -> Path:
    """A copy of the ONNX model ``source`` whose metadata states ``threshold`` (``fakelocator.threshold``)."""
    import onnx

    from fakelocator.metadata import ModelMetadata, props_of, write_metadata

    model = onnx.load(str(source))
    write_metadata(model, ModelMetadata.from_props(props_of(model)).with_threshold(threshold))
    onnx.save(model, str(path))
    return Path(path)
