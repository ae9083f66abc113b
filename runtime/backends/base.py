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
from fakelocator.errors import FakeLocatorError
from fakelocator.metadata import DEFAULT_THRESHOLD, ModelMetadata


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
    threshold: float = DEFAULT_THRESHOLD  # the model's calibrated decision threshold (fakelocator.threshold)

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
            threshold=meta.threshold,
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

    def device_io(self, batch_size: int) -> "DeviceIO":
        """The backend's device-resident inputs and outputs for the GPU pipeline, for batches of up
        to ``batch_size`` (see :class:`DeviceIO`). Raises :class:`DeviceIOUnavailable`, with the
        reason, when this backend (or this model on it) only takes host arrays."""
        raise DeviceIOUnavailable(f"the {self.name} backend takes host arrays only")

    def close(self) -> None:
        """Release device memory and sessions. Idempotent."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class DeviceIOUnavailable(FakeLocatorError):
    """A backend cannot read its input from, or write its outputs to, device memory; the message says why."""


@dataclass(frozen=True)
class DeviceTensor:
    """A C-contiguous tensor in device memory: ``ptr`` (an int address), ``shape``, ``dtype``."""

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


class DeviceIO(ABC):
    """A backend's inputs and outputs in device memory: what the GPU pipeline needs from a backend.

    The pipeline's preprocessing kernel writes straight into :meth:`input`, :meth:`run` infers,
    and the postprocessing kernel reads the ``map`` output where the network left it; nothing
    crosses to the host in between. Buffers belong to the DeviceIO (or its backend) and are
    reused for every batch, so work on them must be serialized: callers enqueue on ``stream``
    while holding ``lock``.

    Attributes:
        device_index: the CUDA device the buffers live on.
        max_batch: the largest batch :meth:`run` takes.
        fixed_batch: set when the network takes exactly this batch (smaller batches are padded:
            the rows past ``n`` hold stale data and their outputs are ignored).
        input_dtype: float32 or float16, the network input's element type.
        map_size: (h, w) of the ``map`` output (float32).
        feature_size: C of the ``features`` output, or None when the model has none.
        stream: the stream the bindings' work is ordered on (a ``fakelocator.runtime.cuda.Stream``).
        lock: held while enqueueing one batch's preprocess → run → postprocess.
    """

    device_index: int
    max_batch: int
    fixed_batch: int | None = None
    input_dtype: np.dtype
    map_size: tuple[int, int]
    feature_size: int | None
    stream: Any
    lock: Any

    def release_owned(self) -> None:
        """Free the device buffers (``self._buffers``, name → buffer) and the stream that this DeviceIO
        allocated itself; a DeviceIO that borrows its backend's (TensorRT) does not call it."""
        for buffer in getattr(self, "_buffers", {}).values():
            buffer.close()
        self._buffers = {}
        stream = getattr(self, "stream", None)
        if stream is not None:
            stream.close()
        self.stream = None

    def batch_rows(self, n: int) -> int:
        """Rows the network runs for ``n`` crops (``fixed_batch`` when set)."""
        if not 1 <= n <= self.max_batch:
            raise FakeLocatorError(f"a batch of {n} does not fit this backend's device buffers (1..{self.max_batch})")
        return self.fixed_batch or n

    @abstractmethod
    def input(self, n: int) -> DeviceTensor:
        """The device input for a batch of ``n`` crops: (``batch_rows(n)``, 3, h, w) ``input_dtype``."""

    @abstractmethod
    def run(self, n: int, stream) -> dict[str, DeviceTensor]:
        """Infers ``batch_rows(n)`` rows of :meth:`input`, ordered after the work already on ``stream``.

        Returns the device outputs, complete in ``stream`` order: "map" (rows, 1, h, w) float32,
        "score" (rows, 1) float32 and, when the model has it, "features" (rows, C) float32.
        """

    def close(self) -> None:
        """Frees what this DeviceIO allocated (not the backend's own buffers). Idempotent."""
