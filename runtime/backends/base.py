"""What every inference backend provides.

A backend owns one loaded network on one device. It takes a batch already preprocessed by the
contract and returns the network's raw outputs at network resolution; decoding, preprocessing,
batching, upsampling to full resolution and writing are the pipeline's, not the backend's.

Backends are imported lazily by name (``fakelocator.runtime.backends.<name>``), so that
``import fakelocator.runtime`` pulls in neither torch nor tensorrt nor CUDA libraries.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fakelocator.contract import METADATA_KEY as PREPROCESSING_KEY
from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError

#: Metadata keys of an exported model (ONNX ``metadata_props``, engine sidecar), besides the contract's.
CONFIG_KEY = "fakelocator.model_config"
PROVENANCE_KEY = "fakelocator.provenance"
VERSION_KEY = "fakelocator.version"
PRECISION_KEY = "fakelocator.precision"


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model says about itself (from ONNX metadata, an engine sidecar or a checkpoint)."""

    path: str
    format: str  # "onnx" | "engine" | "checkpoint"
    preprocessing: Preprocessing
    config: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    precision: str = "fp32"  # "fp32" | "fp16" | "mixed"

    @classmethod
    def from_metadata(cls, path: str, format: str, metadata: dict[str, str]) -> "ModelInfo":
        """From the string key/values of ONNX ``metadata_props`` or an engine sidecar (JSON strings for dicts)."""
        if PREPROCESSING_KEY not in metadata:
            raise FakeLocatorError(
                f"model {path}: no {PREPROCESSING_KEY!r} in its metadata; not a fakelocator export "
                "(export models with `fakelocator export onnx`)"
            )
        preprocessing = Preprocessing.from_json(metadata[PREPROCESSING_KEY])

        def parse(key: str) -> dict[str, Any]:
            try:
                value = json.loads(metadata.get(key) or "{}")
            except json.JSONDecodeError as e:
                raise FakeLocatorError(f"model {path}: metadata {key!r} is not valid JSON ({e})") from None
            if not isinstance(value, dict):
                raise FakeLocatorError(f"model {path}: metadata {key!r} must be a JSON object")
            return value

        return cls(
            path=path,
            format=format,
            preprocessing=preprocessing,
            config=parse(CONFIG_KEY),
            provenance=parse(PROVENANCE_KEY),
            version=metadata.get(VERSION_KEY, ""),
            precision=metadata.get(PRECISION_KEY, "fp32"),
        )


class Backend(ABC):
    """One network on one device.

    Attributes:
        name: "onnxruntime", "tensorrt" or "torch".
        device: "cpu" or "cuda:<index>".
        info: the model's metadata, including its preprocessing contract.
        max_batch: the largest batch ``infer`` accepts (None: no limit).
        fixed_batch: set when ``infer`` accepts exactly this batch size and no other (a model or
            engine exported with a static batch axis); the pipeline then pads partial batches.
    """

    name: str
    device: str
    info: ModelInfo
    max_batch: int | None = None
    fixed_batch: int | None = None

    @abstractmethod
    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """(N, 3, h, w) float32 network input → {"map": (N, 1, h, w) float32 in [0, 1], "score": (N, 1) float32}.

        May also return "features" (N, C) when the model has that output.
        """

    def close(self) -> None:
        """Release device memory and sessions. Idempotent."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
