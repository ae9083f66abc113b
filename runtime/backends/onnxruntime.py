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

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.backends.base import Backend, ModelInfo

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
    return OnnxRuntimeBackend(model, device=device, threads=threads, spinning=spinning)


def _cuda_index(device: str) -> int:
    if device == "cuda":
        return 0
    try:
        return int(device.split(":", 1)[1])
    except (IndexError, ValueError):
        raise FakeLocatorError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from None


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
                f"{', '.join(ort.get_available_providers())}); pip install 'fakelocator[gpu]' or use device cpu"
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
        if "image" not in inputs or not {"map", "score"} <= outputs:
            raise FakeLocatorError(
                f"model {path}: expected input 'image' and outputs 'map', 'score'; it has inputs "
                f"{sorted(inputs)} and outputs {sorted(outputs)}"
            )
        spec = inputs["image"]
        shape = list(spec.shape)
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
            raise FakeLocatorError(f"model {path}: input 'image' must be (N, 3, H, W), got {shape}")
        h, w = self.info.preprocessing.size
        for axis, want in ((2, h), (3, w)):
            if isinstance(shape[axis], int) and shape[axis] != want:
                raise FakeLocatorError(
                    f"model {path}: input 'image' is {shape[2]}x{shape[3]} but its preprocessing contract says {h}x{w}"
                )
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.max_batch = self.fixed_batch
        self._input_dtype = np.float16 if spec.type == "tensor(float16)" else np.float32
        self._outputs = [n for n in ("map", "score", "features") if n in outputs]

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        feed = np.ascontiguousarray(batch, dtype=self._input_dtype)  # (N, 3, h, w)
        values = self.session.run(self._outputs, {"image": feed})
        return {name: np.asarray(v, np.float32) for name, v in zip(self._outputs, values)}

    def close(self) -> None:
        self.session = None
