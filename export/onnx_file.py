"""Writing ONNX files: one self-contained file (weights inside, no ``.onnx.data``).

Reading one (hash, inputs, outputs, metadata) is ``fakelocator.runtime.onnx_info``; its names stay
importable from here.
"""

from __future__ import annotations

from pathlib import Path

from fakelocator.errors import FakeLocatorError
from fakelocator.files import atomic_write_bytes
from fakelocator.model_io import INPUT_NAME, OUTPUT_NAMES, REQUIRED_OUTPUTS
from fakelocator.runtime.onnx_info import OnnxInfo, TensorSpec, file_sha256, read_onnx_info

__all__ = [
    "INPUT_NAME", "OUTPUT_NAMES", "PROTOBUF_LIMIT", "REQUIRED_OUTPUTS", "OnnxInfo", "TensorSpec", "file_sha256",
    "read_onnx_info", "save_single_file",
]

PROTOBUF_LIMIT = 2**31 - 1  # bytes: the most a single-file ONNX (one protobuf message) can hold


def save_single_file(model, path: str | Path) -> Path:
    """Save an ``onnx.ModelProto`` as one self-contained file (weights inside, no ``.onnx.data``)."""
    size = model.ByteSize()
    if size > PROTOBUF_LIMIT:
        raise FakeLocatorError(
            f"model {path}: {size / 2**30:.1f} GiB does not fit a single-file ONNX (2 GiB protobuf limit)"
        )
    atomic_write_bytes(path, model.SerializeToString())
    return Path(path)
