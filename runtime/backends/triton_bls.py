"""A backend whose network runs in another Triton model: each batch is a BLS request.

Inside Triton's Python backend, the pipeline model (``fakelocator.runtime.triton_models``) runs the
runtime's own ``Locator`` (decoding, resizing or tiling, batching, upsampling or stitching, per-image
errors) around this backend, so the server-side pipeline is ``trt-locate``'s code, not a copy. Its
``infer`` sends the preprocessed batch to the network model (onnxruntime, tensorrt or python backend)
with ``pb_utils.InferenceRequest(...).exec()``; Triton's dynamic batcher in front of the network
merges the batches of concurrent pipeline executions.

It is not one of the loadable backends (``fakelocator.runtime.backends.load_backend``): it exists
only inside Triton, where ``triton_python_backend_utils`` is importable.
"""

from __future__ import annotations

from types import ModuleType
from typing import Callable, Sequence

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.backends.base import Backend, ModelInfo

class Cancelled(FakeLocatorError):
    """Every request of the execution was cancelled: the rest of its work is dropped."""


#: Triton data types of the network input, and their numpy types.
INPUT_DTYPES = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16}


class TritonBLSBackend(Backend):
    """The network model ``model_name`` on the same Triton server.

    Args:
        model_name: the network model's name in the repository.
        info: the network's metadata (its preprocessing contract above all).
        max_batch: the network's ``max_batch_size``: the pipeline never sends larger batches.
        input_dtype: "TYPE_FP32" or "TYPE_FP16", the network input's Triton type.
        outputs: the outputs to request.
        pb_utils: the ``triton_python_backend_utils`` module (imported when None: only inside Triton).
        timeout_us: the BLS request's timeout in microseconds (0: none).
    """

    name = "triton"

    def __init__(
        self,
        model_name: str,
        info: ModelInfo,
        *,
        max_batch: int,
        input_dtype: str = "TYPE_FP32",
        outputs: Sequence[str] = ("map", "score"),
        pb_utils: ModuleType | None = None,
        timeout_us: int = 0,
    ):
        if input_dtype not in INPUT_DTYPES:
            raise FakeLocatorError(f"Triton model {model_name}: input type {input_dtype} is not one of {tuple(INPUT_DTYPES)}")
        if max_batch < 1:
            raise FakeLocatorError(f"Triton model {model_name}: max batch must be >= 1, got {max_batch}")
        if pb_utils is None:
            import triton_python_backend_utils as pb_utils  # only inside Triton's Python backend
        self._pb = pb_utils
        self.model_name = model_name
        self.info = info
        self.max_batch = int(max_batch)
        self.device = f"triton:{model_name}"
        self._dtype = INPUT_DTYPES[input_dtype]
        self._outputs = list(outputs)
        self._timeout_us = int(timeout_us)

    #: Set by the pipeline model for the length of one execution: True once every request of it is
    #: cancelled; the next network batch then raises ``Cancelled`` instead of being sent.
    stop_when: "Callable[[], bool] | None" = None

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        pb = self._pb
        if self.stop_when is not None and self.stop_when():
            raise Cancelled("every request of this execution was cancelled")
        x = np.ascontiguousarray(batch, dtype=self._dtype)  # (N, 3, h, w)
        request = pb.InferenceRequest(
            model_name=self.model_name,
            inputs=[pb.Tensor("image", x)],
            requested_output_names=self._outputs,
            timeout=self._timeout_us,
        )
        response = request.exec()
        if response.has_error():
            raise FakeLocatorError(f"Triton model {self.model_name}: inference of a batch of {len(x)} failed: "
                                   f"{response.error().message()}")
        outputs = {}
        for name in self._outputs:
            tensor = pb.get_output_tensor_by_name(response, name)
            if tensor is None:
                raise FakeLocatorError(f"Triton model {self.model_name}: the response has no output {name!r}")
            outputs[name] = np.asarray(tensor.as_numpy(), np.float32)
        return outputs
