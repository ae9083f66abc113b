"""The ONNX Runtime backend: an exported ``.onnx`` on the CUDA execution provider, or on the CPU.

Device "auto" asks for the CUDA provider when the installed onnxruntime has it (``onnxruntime-gpu``)
and takes the CPU when the session ends up without it (ONNX Runtime falls back silently when the
CUDA libraries are missing; here an explicit "cuda" request that falls back is an error instead).

Options: ``threads`` (intra-op threads; 0 = ONNX Runtime's default, one per physical core);
``spinning`` (default False): whether idle intra-op threads spin-wait for work. ONNX Runtime spins by
default, which shortens each operator's start but burns the cores the pipeline's decoding and
upsampling threads need: on the 2-core development machine, turning it off gave 20-35 % more
images/s end to end and 20 % less CPU time per image (docs/benchmarks.md).
"""

from __future__ import annotations

import importlib
import threading

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.model_io import INPUT_NAME, OUTPUT_NAMES, check_io_names
from fakelocator.runtime.limits import check_threads
from fakelocator.runtime.backends.base import Backend, DeviceIO, DeviceIOUnavailable, DeviceTensor, ModelInfo

FORMATS = ("onnx",)
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def available() -> tuple[bool, str]:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        return False, f"onnxruntime cannot be imported ({e}): pip install 'fakelocator[runtime]'"
    return True, ""


def has_cuda() -> bool:
    import onnxruntime as ort

    return CUDA in ort.get_available_providers()


def load(
    model: str, *, device: str = "auto", batch_size: int = 8, threads: int = 0, spinning: bool = False, **options
) -> "OnnxRuntimeBackend":
    if options:
        raise FakeLocatorError(f"onnxruntime backend: unknown options {sorted(options)}; it takes threads, spinning")
    check_threads("threads", threads, allow_zero=True)
    return OnnxRuntimeBackend(model, device=device, threads=threads, spinning=spinning)


def _cuda_index(device: str) -> int:
    if device == "cuda":
        return 0
    try:
        return int(device.split(":", 1)[1])
    except (IndexError, ValueError):
        raise FakeLocatorError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from None


#: How onnxruntime words a failed allocation (its CPU and CUDA allocators, and C++'s bad_alloc).
_OUT_OF_MEMORY = ("Failed to allocate memory", "bad_alloc", "CUDA failure 2: out of memory")


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: str, *, device: str = "auto", threads: int = 0, spinning: bool = False):
        import onnxruntime as ort

        if device not in ("auto", "cpu") and not device.startswith("cuda"):
            raise FakeLocatorError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
        want_cuda = device.startswith("cuda") or (device == "auto" and has_cuda())
        if device.startswith("cuda") and not has_cuda():
            raise FakeLocatorError(
                f"device {device}: this onnxruntime has no CUDA provider (providers: "
                f"{', '.join(ort.get_available_providers())}); for the GPU, first pip uninstall onnxruntime "
                "(onnxruntime and onnxruntime-gpu install the same Python package, and the CPU one shadows the "
                "GPU one), then pip install 'fakelocator[gpu]'; or use device cpu"
            )
        index = _cuda_index(device) if device.startswith("cuda") else 0
        providers = [(CUDA, {"device_id": index}), CPU] if want_cuda else [CPU]

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = int(threads)
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        options.log_severity_level = 3  # errors only: the CPU-fallback warning is handled below
        try:
            self.session = ort.InferenceSession(path, sess_options=options, providers=providers)
        except Exception as e:  # noqa: BLE001 - ORT raises several unrelated types for a bad file
            raise FakeLocatorError(f"model {path}: ONNX Runtime cannot load it ({str(e).strip().splitlines()[0]})") from None

        got_cuda = CUDA in self.session.get_providers()
        if device.startswith("cuda") and not got_cuda:
            raise FakeLocatorError(
                f"device {device}: ONNX Runtime could not start its CUDA provider (CUDA/cuDNN libraries "
                "missing or incompatible); use device cpu"
            )
        self.device = f"cuda:{index}" if got_cuda else "cpu"
        self.info = ModelInfo.from_metadata(path, "onnx", self.session.get_modelmeta().custom_metadata_map)
        self._check_io(path)

    def _check_io(self, path: str) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        check_io_names(sorted(inputs), sorted(outputs), f"model {path}")
        spec = inputs[INPUT_NAME]
        shape = list(spec.shape)
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
            raise FakeLocatorError(f"model {path}: input {INPUT_NAME!r} must be (N, 3, H, W), got {shape}")
        h, w = self.info.preprocessing.size
        for axis, want in ((2, h), (3, w)):
            if isinstance(shape[axis], int) and shape[axis] != want:
                raise FakeLocatorError(
                    f"model {path}: input {INPUT_NAME!r} is {shape[2]}x{shape[3]} but its preprocessing contract says {h}x{w}"
                )
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.max_batch = self.fixed_batch
        self._input_dtype = np.float16 if spec.type == "tensor(float16)" else np.float32
        self._outputs = [n for n in OUTPUT_NAMES if n in outputs]

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        feed = np.ascontiguousarray(batch, dtype=self._input_dtype)  # (N, 3, h, w)
        try:
            values = self.session.run(self._outputs, {INPUT_NAME: feed})
        except Exception as e:  # onnxruntime's own types (RuntimeException, Fail), not MemoryError
            if any(sign in str(e) for sign in _OUT_OF_MEMORY):
                # the run turns a MemoryError into one line (a batch no input owns), not a traceback
                raise MemoryError(f"onnxruntime ran out of memory on a batch of {len(feed)}: {e}") from e
            raise
        return {name: np.asarray(v, np.float32) for name, v in zip(self._outputs, values)}

    def device_io(self, batch_size: int) -> "OnnxRuntimeDeviceIO":
        """Device buffers bound to the session with I/O binding, for the GPU pipeline (CUDA provider only)."""
        if not self.device.startswith("cuda"):
            raise DeviceIOUnavailable("the onnxruntime session runs on the CPU (no CUDA execution provider)")
        return OnnxRuntimeDeviceIO(self, batch_size)

    def close(self) -> None:
        self.session = None


_ELEMENT_TYPES = {"tensor(float)": np.dtype(np.float32), "tensor(float16)": np.dtype(np.float16)}


class OnnxRuntimeDeviceIO(DeviceIO):
    """Preallocated device buffers bound to the session's input and outputs (``session.io_binding()``).

    The preprocessing kernel writes the input buffer, ``run_with_iobinding`` reads it and writes
    the outputs in place (no copies by ONNX Runtime), and the postprocessing kernel reads the
    ``map`` buffer. ONNX Runtime's CUDA provider runs on a stream of its own and synchronizes it
    before ``run_with_iobinding`` returns (its default), so :meth:`run` first synchronizes the
    caller's stream (the input must be complete) and its outputs are complete when it returns.

    ``device_type`` "cpu" binds host memory instead: only for tests in which host memory stands in
    for device memory (a fake ``fakelocator.runtime.cuda``).
    """

    def __init__(self, backend: OnnxRuntimeBackend, batch_size: int, *, device_type: str = "cuda"):
        if backend.session is None:
            raise FakeLocatorError("the onnxruntime backend is closed")
        self.session = backend.session
        self._device_type = device_type
        self.device_index = _cuda_index(backend.device) if backend.device.startswith("cuda") else 0
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        self.input_dtype = _ELEMENT_TYPES.get(inputs[INPUT_NAME].type)
        if self.input_dtype is None:
            raise DeviceIOUnavailable(f"the model's input is {inputs[INPUT_NAME].type}; the GPU preprocessing writes float32 or float16")
        for name in backend._outputs:
            if outputs[name].type != "tensor(float)":
                raise DeviceIOUnavailable(f"the model's output {name!r} is {outputs[name].type}; the GPU path reads float32 outputs")
        self._size = backend.info.preprocessing.size
        map_shape = list(outputs["map"].shape)
        if len(map_shape) != 4 or map_shape[1] != 1:
            raise DeviceIOUnavailable(f"the model's map output has shape {map_shape}; expected (N, 1, h, w)")
        # A dynamic map size is the input's: the exported contract (docs/export.md).
        self.map_size = tuple(int(d) if isinstance(d, int) else s for d, s in zip(map_shape[2:], self._size))
        self.feature_size = None
        if "features" in backend._outputs:
            features = list(outputs["features"].shape)
            if len(features) != 2 or not isinstance(features[1], int):
                raise DeviceIOUnavailable(f"the model's features output has shape {features}; the GPU path needs (N, C) with a fixed C")
            self.feature_size = features[1]
        self.fixed_batch = backend.fixed_batch
        self.max_batch = backend.fixed_batch or int(batch_size)
        self._names = list(backend._outputs)

        cuda = importlib.import_module("fakelocator.runtime.cuda")
        if device_type == "cuda":
            cuda.set_device(self.device_index)
        rows, (h, w), (mh, mw) = self.max_batch, self._size, self.map_size
        sizes = {
            INPUT_NAME: rows * 3 * h * w * self.input_dtype.itemsize,
            "map": rows * mh * mw * 4,
            "score": rows * 4,
            "features": rows * (self.feature_size or 0) * 4,
        }
        self._buffers = {}
        try:
            for name in [INPUT_NAME, *self._names]:
                self._buffers[name] = cuda.DeviceBuffer(sizes[name])
            self.stream = cuda.Stream()
        except BaseException:
            self.close()
            raise
        self.lock = threading.Lock()
        self._binding = self.session.io_binding()
        self._bound_rows = None

    def _shape(self, name: str, rows: int) -> tuple[int, ...]:
        return {
            INPUT_NAME: (rows, 3, *self._size),
            "map": (rows, 1, *self.map_size),
            "score": (rows, 1),
            "features": (rows, self.feature_size or 0),
        }[name]

    def input(self, n: int) -> DeviceTensor:
        rows = self.batch_rows(n)
        return DeviceTensor(int(self._buffers[INPUT_NAME].ptr), self._shape(INPUT_NAME, rows), self.input_dtype)

    def _bind(self, rows: int) -> None:
        b, kind, index = self._binding, self._device_type, self.device_index
        b.bind_input(INPUT_NAME, kind, index, self.input_dtype, list(self._shape(INPUT_NAME, rows)), int(self._buffers[INPUT_NAME].ptr))
        for name in self._names:
            b.bind_output(name, kind, index, np.float32, list(self._shape(name, rows)), int(self._buffers[name].ptr))
        self._bound_rows = rows

    def run(self, n: int, stream) -> dict[str, DeviceTensor]:
        if self.session is None:
            raise FakeLocatorError("the onnxruntime device I/O is closed")
        rows = self.batch_rows(n)
        if rows != self._bound_rows:
            self._bind(rows)
        stream.synchronize()
        try:
            self.session.run_with_iobinding(self._binding)
        except Exception as e:  # noqa: BLE001 - ORT raises several unrelated types
            raise FakeLocatorError(f"ONNX Runtime inference failed for a device batch of {rows}: {str(e).strip().splitlines()[0]}") from None
        return {name: DeviceTensor(int(self._buffers[name].ptr), self._shape(name, rows), np.dtype(np.float32)) for name in self._names}

    def close(self) -> None:
        self.release_owned()
        self.session = self._binding = None
