"""What every inference backend provides.

A backend owns one loaded network on one device. It takes a batch already preprocessed by the
contract and returns the network's raw outputs at network resolution; decoding, preprocessing,
batching, upsampling to full resolution and writing are the pipeline's, not the backend's.

Backends are imported lazily by name (``fakelocator.runtime.backends.<name>``), so that
``import fakelocator.runtime`` pulls in neither torch nor tensorrt nor CUDA libraries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fakelocator.contract import Preprocessing
from fakelocator.metadata import ModelMetadata


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
        meta = ModelMetadata.from_props(metadata, source=f"model {path}")
        return cls(
            path=path,
            format=format,
            preprocessing=meta.preprocessing,
            config=meta.config,
            provenance=meta.provenance,
            version=meta.version,
            precision=meta.precision,
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
