"""The TensorRT backend: a prebuilt ``.engine`` (with its ``.engine.json`` sidecar), or an ``.onnx``
built once per machine through the engine cache.

An engine is refused, with the mismatch and the command that rebuilds it, when its sidecar does not
match the running TensorRT or GPU (``engine_sidecar.mismatches``) or the plan is not the one the
sidecar describes. Device memory and the stream come from ``fakelocator.runtime.cuda``
(cuda-python, NVIDIA's binding; see docs/export.md for why not pycuda). Inference runs with
``execute_async_v3`` on the backend's own stream, never the default stream; every call that returns
a status is checked; output shapes are read after the input shape is set.

Not run in this project's environments (no TensorRT there); tests/export/test_tensorrt_backend.py
checks it against fake ``tensorrt`` and CUDA modules, and the ``needs_tensorrt`` tests run it for real.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from pathlib import Path

import numpy as np

from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError
from fakelocator.model_io import ENGINE_SUFFIXES, INPUT_NAME, OUTPUT_NAMES, REQUIRED_OUTPUTS
from fakelocator.runtime.backends.base import Backend, DeviceIO, DeviceIOUnavailable, DeviceTensor, ModelInfo
from fakelocator.runtime.engine_cache import cached_engine
from fakelocator.runtime.engine_sidecar import (
    BuildOptions,
    EngineSidecar,
    ShapeProfile,
    ensure_compatible,
    ensure_matches_plan,
    rebuild_command,
    sidecar_path,
)
from fakelocator.runtime.tensorrt_lib import cuda_module, import_tensorrt, make_logger, tensorrt_available, use_device

FORMATS = ("engine", "onnx")
INPUT = INPUT_NAME
OUTPUTS = OUTPUT_NAMES


def available() -> tuple[bool, str]:
    ok, reason = tensorrt_available()
    if not ok:
        return False, reason
    try:
        import cuda.bindings.runtime  # noqa: F401
    except ImportError as e:
        return False, f"cuda-python cannot be imported ({e}): pip install 'fakelocator[gpu]'"
    return True, ""


def _log(message: str) -> None:
    print(f"tensorrt: {message}", file=sys.stderr)


def device_index(device: str) -> int:
    if device in ("auto", "cuda"):
        return 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    raise FakeLocatorError(f"the tensorrt backend runs on a GPU: device must be auto, cuda or cuda:N, got {device!r}")


def load(model: str, *, device: str = "cuda:0", batch_size: int = 1, cache_dir: str | None = None, **options) -> "TensorRTBackend":
    """Load an engine, or build one from an ONNX file through the engine cache.

    Args:
        model: a ``.engine`` (``.plan``, ``.trt``) with its sidecar, or a fakelocator ``.onnx``.
        device: "auto", "cuda" or "cuda:N".
        batch_size: for an ONNX, the engine's profile is batch 1..batch_size, tuned for batch_size.
        cache_dir: where cached engines go (default ``$FAKELOCATOR_CACHE/engines`` or ``~/.cache/fakelocator/engines``).
        options: for an ONNX, ``BuildOptions`` fields other than batch (e.g. ``workspace``,
            ``optimization_level``, ``timing_cache``).
    """
    index = device_index(device)
    path = Path(model)
    if path.suffix.lower() == ".onnx":
        if batch_size < 1:
            raise FakeLocatorError(f"batch_size must be >= 1, got {batch_size}")
        try:
            build = BuildOptions(batch=(1, batch_size, batch_size), **options)
        except TypeError:
            raise FakeLocatorError(
                f"tensorrt backend: unknown options {sorted(options)}; it takes cache_dir and the BuildOptions fields"
            ) from None
        engine = cached_engine(path, build, device=index, cache_dir=cache_dir, log=_log)
    elif path.suffix.lower() in ENGINE_SUFFIXES:
        if options or cache_dir is not None:
            raise FakeLocatorError(f"tensorrt backend: options {sorted(options)} apply when building from an ONNX, not to {path}")
        engine = path
    else:
        raise FakeLocatorError(f"model {path}: the tensorrt backend loads .engine (with its .engine.json) or .onnx files")
    return TensorRTBackend(engine, device=index)


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, engine_path: str | Path, *, device: int = 0):
        self._buffers: list = []
        self.stream = self.context = self.engine = self._runtime = None
        try:
            self._open(Path(engine_path), device)
        except BaseException:
            self.close()
            raise

    def _open(self, engine_path: Path, device: int) -> None:
        if not engine_path.is_file():
            raise FakeLocatorError(f"engine {engine_path}: no such file")
        trt = import_tensorrt()
        cuda = cuda_module()
        sidecar = EngineSidecar.read(sidecar_path(engine_path))
        here = use_device(device)
        ensure_compatible(sidecar, here, engine_path)
        plan = engine_path.read_bytes()
        ensure_matches_plan(sidecar, hashlib.sha256(plan).hexdigest(), engine_path)

        self._trt = trt
        self._logger = make_logger(trt, _log)
        self._runtime = trt.Runtime(self._logger)
        if sidecar.options.version_compatible and not sidecar.options.exclude_lean_runtime:
            self._runtime.engine_host_code_allowed = True  # the plan embeds its lean runtime: trust this file
        self.engine = self._runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            detail = "; ".join(self._logger.errors[-3:]) or "no error message from TensorRT"
            raise FakeLocatorError(
                f"engine {engine_path}: TensorRT cannot deserialize it ({detail}); rebuild it: {rebuild_command(sidecar, engine_path)}"
            )
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise FakeLocatorError(f"engine {engine_path}: TensorRT could not create an execution context (GPU memory?)")

        self.sidecar = sidecar
        self.device = f"cuda:{device}"
        self.info = ModelInfo(
            path=str(engine_path),
            format="engine",
            preprocessing=Preprocessing.from_dict(sidecar.preprocessing),
            config=sidecar.model_config,
            provenance=sidecar.provenance,
            version=sidecar.fakelocator_version,
            precision=sidecar.precision,
            threshold=sidecar.threshold,
        )
        self._bind_io(engine_path, cuda)

    def _bind_io(self, engine_path: Path, cuda) -> None:
        """Allocate device and pinned host buffers for the profile's largest shapes and bind them once."""
        trt = self._trt
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if inputs != [INPUT] or not set(REQUIRED_OUTPUTS) <= set(outputs):
            raise FakeLocatorError(
                f"engine {engine_path}: expected input {INPUT!r} and outputs {', '.join(REQUIRED_OUTPUTS)}; "
                f"it has inputs {inputs}, outputs {outputs}"
            )
        lo, opt, hi = (tuple(int(d) for d in s) for s in self.engine.get_tensor_profile_shape(INPUT, 0))
        self.profile = ShapeProfile(INPUT, lo, opt, hi)
        self.max_batch = hi[0]
        self.outputs = [n for n in OUTPUTS if n in outputs]
        self.stream = cuda.Stream()
        self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in [INPUT, *self.outputs]}

        self._set_input_shape(hi)
        largest = {INPUT: hi, **{n: self._output_shape(n) for n in self.outputs}}
        self.device_buffers, self.host_buffers = {}, {}
        for name, shape in largest.items():
            nbytes = int(np.prod(shape)) * self.dtypes[name].itemsize
            self.device_buffers[name] = cuda.DeviceBuffer(nbytes)
            self.host_buffers[name] = cuda.PinnedBuffer(nbytes)
            self._buffers += [self.device_buffers[name], self.host_buffers[name]]
            if not self.context.set_tensor_address(name, int(self.device_buffers[name].ptr)):
                raise FakeLocatorError(f"TensorRT refused the device address of tensor {name!r}")

    def _set_input_shape(self, shape: tuple[int, ...]) -> None:
        if not self.context.set_input_shape(INPUT, tuple(int(d) for d in shape)):
            raise FakeLocatorError(f"TensorRT refused input shape {shape} (profile {self.profile.describe()})")

    def _output_shape(self, name: str) -> tuple[int, ...]:
        shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
        if any(d < 0 for d in shape):
            raise FakeLocatorError(f"TensorRT could not infer the shape of output {name!r} (got {shape})")
        return shape

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        shape = self.upload(batch)
        self.execute(shape)
        pinned = self.download()
        self.stream.synchronize()
        return {name: np.array(out, dtype=np.float32, copy=True) for name, out in pinned.items()}  # pinned buffers are reused

    # ``infer``'s three steps, each enqueued on ``self.stream`` and returning before the GPU runs it;
    # public so that the stage benchmark can time them with events between (benchmarks/stages.py).

    def upload(self, batch: np.ndarray) -> tuple[int, ...]:
        """Stage an (N, 3, h, w) batch in pinned memory and enqueue its copy to the input binding; returns its shape."""
        if self.context is None:
            raise FakeLocatorError("the tensorrt backend is closed")
        shape = tuple(batch.shape)
        if batch.ndim != 4 or not self.profile.accepts(shape):
            raise FakeLocatorError(
                f"batch of shape {shape} is outside the engine's profile ({self.profile.describe()}); "
                "rebuild the engine with a larger --batch, or split the batch"
            )
        staged = self.host_buffers[INPUT].array(shape, self.dtypes[INPUT])  # (N, 3, h, w), pinned
        staged[...] = batch
        self.device_buffers[INPUT].copy_from_host(staged, stream=self.stream)
        return shape

    def execute(self, shape: tuple[int, ...]) -> None:
        """Enqueue the engine on the uploaded input of ``shape``."""
        self._set_input_shape(shape)
        if not self.context.execute_async_v3(self.stream.handle):
            detail = "; ".join(self._logger.errors[-3:]) or "no error message from TensorRT"
            raise FakeLocatorError(f"TensorRT inference failed for a batch of shape {shape}: {detail}")

    def download(self) -> dict[str, np.ndarray]:
        """Enqueue the outputs' copies into pinned memory; the arrays hold them once the stream is synchronized."""
        pinned = {}
        for name in self.outputs:
            pinned[name] = self.host_buffers[name].array(self._output_shape(name), self.dtypes[name])
            self.device_buffers[name].copy_to_host(pinned[name], stream=self.stream)
        return pinned

    def device_io(self, batch_size: int) -> "TensorRTDeviceIO":
        """The engine's own device bindings, for the GPU pipeline (see ``TensorRTDeviceIO``)."""
        return TensorRTDeviceIO(self, batch_size)

    def close(self) -> None:
        for buffer in self._buffers:
            buffer.close()
        self._buffers = []
        if self.stream is not None:
            self.stream.close()
        self.stream = self.context = self.engine = self._runtime = None


class TensorRTDeviceIO(DeviceIO):
    """The engine's bindings as the GPU pipeline's input and outputs.

    The preprocessing kernel writes into the ``image`` binding (float32, or float16 when the engine
    was built with an fp16 input), ``execute_async_v3`` runs on the caller's stream, and the
    postprocessing kernel reads the ``map`` binding. The bindings are the backend's, allocated once
    for the profile's largest shapes; nothing is allocated here. Work on them is ordered on the
    backend's stream (``stream``), so host ``infer`` calls and device batches never overlap.
    """

    def __init__(self, backend: TensorRTBackend, batch_size: int):
        if backend.context is None:
            raise FakeLocatorError("the tensorrt backend is closed")
        self._backend = backend
        dtypes = backend.dtypes
        if dtypes[INPUT] not in (np.dtype(np.float32), np.dtype(np.float16)):
            raise DeviceIOUnavailable(f"the engine's input is {dtypes[INPUT]}; the GPU preprocessing writes float32 or float16")
        for name in backend.outputs:
            if dtypes[name] != np.dtype(np.float32):
                raise DeviceIOUnavailable(
                    f"the engine's output {name!r} is {dtypes[name]}; the GPU path reads float32 outputs "
                    "(export with fp32 inputs and outputs: keep_io_types)"
                )
        h, w = backend.info.preprocessing.size
        lo, hi = backend.profile.batch[0], backend.profile.batch[2]
        if not backend.profile.accepts((hi, 3, h, w)):
            raise DeviceIOUnavailable(
                f"the engine's profile ({backend.profile.describe()}) does not take the contract's {h}x{w} input"
            )
        self.device_index = int(backend.device.split(":", 1)[1])
        self.max_batch = min(int(batch_size), hi)
        self.fixed_batch = lo if lo == hi else None
        self._min_rows = lo
        self._size = (h, w)
        self.input_dtype = dtypes[INPUT]
        backend._set_input_shape((hi, 3, h, w))
        map_shape = backend._output_shape("map")  # (hi, 1, mh, mw)
        if len(map_shape) != 4 or map_shape[1] != 1:
            raise DeviceIOUnavailable(f"the engine's map output has shape {map_shape}; expected (N, 1, h, w)")
        self.map_size = (int(map_shape[2]), int(map_shape[3]))
        self.feature_size = int(backend._output_shape("features")[1]) if "features" in backend.outputs else None
        self.stream = backend.stream
        self.lock = threading.Lock()

    def batch_rows(self, n: int) -> int:
        return max(super().batch_rows(n), self._min_rows)

    def input(self, n: int) -> DeviceTensor:
        rows = self.batch_rows(n)
        buffer = self._backend.device_buffers[INPUT]
        return DeviceTensor(int(buffer.ptr), (rows, 3, *self._size), self.input_dtype)

    def run(self, n: int, stream) -> dict[str, DeviceTensor]:
        backend = self._backend
        if backend.context is None:
            raise FakeLocatorError("the tensorrt backend is closed")
        rows = self.batch_rows(n)
        backend._set_input_shape((rows, 3, *self._size))
        handle = int(getattr(stream, "handle", stream))
        if not backend.context.execute_async_v3(handle):
            detail = "; ".join(backend._logger.errors[-3:]) or "no error message from TensorRT"
            raise FakeLocatorError(f"TensorRT inference failed for a device batch of {rows}: {detail}")
        return {
            name: DeviceTensor(int(backend.device_buffers[name].ptr), backend._output_shape(name), np.dtype(np.float32))
            for name in backend.outputs
        }
