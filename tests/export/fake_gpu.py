"""Stand-ins for TensorRT's Python API and for ``fakelocator.runtime.cuda``. NOT TensorRT, NOT CUDA.

The API-contract tests install these in ``sys.modules`` to check which calls fakelocator makes, in
which order and with which arguments: network flags, builder flags, optimization profiles, the
timing cache, parser error handling, ``execute_async_v3`` on a non-default stream, output shapes
read after the input shape is set. Names and signatures follow TensorRT's bindings
(python/src/infer/pyCore.cpp and python/src/parsers/pyOnnx.cpp at release/10.16 and 11.1). They
say nothing about whether TensorRT builds or runs the models; the ``needs_tensorrt`` tests do.

The fake "engine" computes ``map = sigmoid(mean over channels)``, ``score = mean(map)``,
``features = mean over pixels``, so data movement through the buffers can be checked exactly.
"""

from __future__ import annotations

import itertools
import json
import types
from dataclasses import dataclass, field

import numpy as np


def fake_outputs(x: np.ndarray) -> dict[str, np.ndarray]:
    """What the fake engine computes from an (N, 3, h, w) input."""
    fakeness = 1.0 / (1.0 + np.exp(-x.mean(axis=1, keepdims=True)))
    return {
        "map": fakeness.astype(np.float32),
        "score": fakeness.mean(axis=(2, 3)).astype(np.float32),
        "features": x.mean(axis=(2, 3)).astype(np.float32),
    }


@dataclass
class State:
    """Everything the fake TensorRT was asked to do, in order."""

    calls: list[tuple] = field(default_factory=list)
    parse_errors: list[dict] = field(default_factory=list)
    build_fails: bool = False
    accept_timing_cache: bool = True
    execute_ok: bool = True
    logged_errors: list[str] = field(default_factory=list)

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def find(self, name: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == name]


class _Enum:
    def __init__(self, **values):
        for k, v in values.items():
            setattr(self, k, v)


def make_tensorrt(version: str = "10.16.1.11", *, fp16_flag: bool = True, same_compute_capability: bool = True):
    """A fresh fake ``tensorrt`` module and its ``State``. TensorRT 11 has no ``BuilderFlag.FP16``: ``fp16_flag=False``."""
    state = State()
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.state = state

    class ILogger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = 0, 1, 2, 3, 4

        def __init__(self):
            pass

        def log(self, severity, msg):
            raise NotImplementedError

    trt.ILogger = ILogger
    trt.NetworkDefinitionCreationFlag = _Enum(STRONGLY_TYPED=1)
    flags = dict(TF32=6, VERSION_COMPATIBLE=13, EXCLUDE_LEAN_RUNTIME=14)
    if fp16_flag:
        flags["FP16"] = 0
    trt.BuilderFlag = _Enum(**flags)
    trt.MemoryPoolType = _Enum(WORKSPACE="WORKSPACE")
    levels = dict(NONE="NONE", AMPERE_PLUS="AMPERE_PLUS")
    if same_compute_capability:
        levels["SAME_COMPUTE_CAPABILITY"] = "SAME_COMPUTE_CAPABILITY"
    trt.HardwareCompatibilityLevel = _Enum(**levels)
    trt.TensorIOMode = _Enum(INPUT="INPUT", OUTPUT="OUTPUT")
    trt.float32, trt.float16 = "DataType.FLOAT", "DataType.HALF"
    trt.nptype = lambda dtype: {"DataType.FLOAT": np.float32, "DataType.HALF": np.float16}[dtype]

    class Tensor:
        def __init__(self, name, dtype, shape):
            self.name, self.dtype, self.shape = name, dtype, tuple(shape)

    class Network:
        def __init__(self, flags):
            self.flags = flags
            self.inputs, self.outputs = [], []

        num_inputs = property(lambda self: len(self.inputs))
        num_outputs = property(lambda self: len(self.outputs))

        def get_input(self, i):
            return self.inputs[i]

        def get_output(self, i):
            return self.outputs[i]

    class ParserError:
        def __init__(self, e):
            self.e = e

        def code(self):
            return self.e.get("code", "UNSUPPORTED_NODE")

        def desc(self):
            return self.e["desc"]

        def node(self):
            return self.e.get("node", -1)

        def node_name(self):
            return self.e.get("node_name", "")

        def node_operator(self):
            return self.e.get("node_operator", "")

        def func(self):
            return "importFunc"

    class OnnxParser:
        def __init__(self, network, logger):
            self.network = network
            state.calls.append(("OnnxParser",))

        def parse_from_file(self, path):
            state.calls.append(("parse_from_file", path))
            if state.parse_errors:
                return False
            import onnx

            model = onnx.load(path, load_external_data=False)
            for v in model.graph.input:
                dims = [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
                self.network.inputs.append(Tensor(v.name, trt.float32, dims))
            for v in model.graph.output:
                dims = [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
                self.network.outputs.append(Tensor(v.name, trt.float32, dims))
            return True

        @property
        def num_errors(self):
            return len(state.parse_errors)

        def get_error(self, i):
            return ParserError(state.parse_errors[i])

    class TimingCache:
        def __init__(self, data):
            self.data = bytes(data)

        def serialize(self):
            return self.data + b"+timings"

    class Config:
        def __init__(self):
            self.flags = set()
            self.profiles = []
            self.timing_cache = None
            self.builder_optimization_level_value = 3
            self.hardware_compatibility_level_value = "NONE"
            self.flags.add(trt.BuilderFlag.TF32)  # on by default, as in TensorRT

        def set_memory_pool_limit(self, pool, size):
            state.calls.append(("set_memory_pool_limit", pool, size))

        @property
        def builder_optimization_level(self):
            return self.builder_optimization_level_value

        @builder_optimization_level.setter
        def builder_optimization_level(self, value):
            state.calls.append(("builder_optimization_level", value))
            self.builder_optimization_level_value = value

        @property
        def hardware_compatibility_level(self):
            return self.hardware_compatibility_level_value

        @hardware_compatibility_level.setter
        def hardware_compatibility_level(self, value):
            state.calls.append(("hardware_compatibility_level", value))
            self.hardware_compatibility_level_value = value

        def set_flag(self, flag):
            state.calls.append(("set_flag", flag))
            self.flags.add(flag)

        def clear_flag(self, flag):
            state.calls.append(("clear_flag", flag))
            self.flags.discard(flag)

        def add_optimization_profile(self, profile):
            state.calls.append(("add_optimization_profile", dict(profile.shapes)))
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, data):
            state.calls.append(("create_timing_cache", bytes(data)))
            return TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            state.calls.append(("set_timing_cache", cache.data, ignore_mismatch))
            if cache.data and not state.accept_timing_cache:
                return False
            self.timing_cache = cache
            return True

        def get_timing_cache(self):
            return self.timing_cache

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, lo, opt, hi):
            state.calls.append(("set_shape", name, tuple(lo), tuple(opt), tuple(hi)))
            self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

    class Builder:
        def __init__(self, logger):
            self.logger = logger
            state.calls.append(("Builder",))

        def create_network(self, flags):
            state.calls.append(("create_network", flags))
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            state.calls.append(("build_serialized_network", sorted(map(str, config.flags))))
            if state.build_fails:
                self.logger.log(ILogger.ERROR, "out of memory while timing tactic 7")
                return None
            io = [{"name": t.name, "mode": "INPUT", "dtype": t.dtype, "shape": list(t.shape)} for t in network.inputs]
            io += [{"name": t.name, "mode": "OUTPUT", "dtype": t.dtype, "shape": list(t.shape)} for t in network.outputs]
            profile = {k: [list(s) for s in v] for k, v in config.profiles[0].shapes.items()}
            return b"FAKEPLAN" + json.dumps({"io": io, "profile": profile}).encode()

    class Context:
        def __init__(self, engine):
            self.engine = engine
            self.input_shape = None
            self.addresses = {}

        def set_input_shape(self, name, shape):
            state.calls.append(("set_input_shape", name, tuple(shape)))
            lo, _, hi = self.engine.profile[name]
            ok = len(shape) == len(lo) and all(a <= s <= b for a, s, b in zip(lo, shape, hi))
            if ok:
                self.input_shape = tuple(shape)
            return ok

        def get_tensor_shape(self, name):
            state.calls.append(("get_tensor_shape", name))
            if self.input_shape is None:
                return (-1,)
            n, c, h, w = self.input_shape
            return {"image": (n, c, h, w), "map": (n, 1, h, w), "score": (n, 1), "features": (n, c)}[name]

        def set_tensor_address(self, name, ptr):
            state.calls.append(("set_tensor_address", name))
            self.addresses[name] = ptr
            return True

        def execute_async_v3(self, stream_handle):
            state.calls.append(("execute_async_v3", stream_handle))
            if not state.execute_ok:
                return False
            x = MEMORY.read(self.addresses["image"], self.input_shape, np.float32)
            for name, value in fake_outputs(x).items():
                if name in self.addresses:
                    MEMORY.write(self.addresses[name], value)
            return True

    class Engine:
        def __init__(self, spec):
            self.io = spec["io"]
            self.profile = {k: [tuple(s) for s in v] for k, v in spec["profile"].items()}

        num_io_tensors = property(lambda self: len(self.io))

        def get_tensor_name(self, i):
            return self.io[i]["name"]

        def get_tensor_mode(self, name):
            return next(t["mode"] for t in self.io if t["name"] == name)

        def get_tensor_dtype(self, name):
            return next(t["dtype"] for t in self.io if t["name"] == name)

        def get_tensor_profile_shape(self, name, profile_index):
            return self.profile[name]

        def create_execution_context(self):
            return Context(self)

    class Runtime:
        def __init__(self, logger):
            self.logger = logger
            self.engine_host_code_allowed = False
            state.calls.append(("Runtime",))

        def deserialize_cuda_engine(self, data):
            state.calls.append(("deserialize_cuda_engine", self.engine_host_code_allowed))
            if not data.startswith(b"FAKEPLAN"):
                self.logger.log(ILogger.ERROR, "magic tag does not match")
                return None
            return Engine(json.loads(data[len(b"FAKEPLAN"):]))

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    return trt, state


# ---- CUDA ---------------------------------------------------------------------------------------


class _Memory:
    """Fake device memory: pointer → bytearray."""

    def __init__(self):
        self.blocks: dict[int, bytearray] = {}
        self._ids = itertools.count(0x7F0000000000, 0x100000)

    def alloc(self, nbytes: int) -> int:
        ptr = next(self._ids)
        self.blocks[ptr] = bytearray(nbytes)
        return ptr

    def read(self, ptr, shape, dtype) -> np.ndarray:
        count = int(np.prod(shape))
        return np.frombuffer(self.blocks[ptr], dtype=dtype, count=count).reshape(shape).copy()

    def write(self, ptr, array: np.ndarray) -> None:
        data = np.ascontiguousarray(array).tobytes()
        self.blocks[ptr][: len(data)] = data


MEMORY = _Memory()


def make_cuda(name: str = "NVIDIA Fake GPU", compute_capability=(8, 9)):
    """A fake ``fakelocator.runtime.cuda`` (the brief's API) and a fake ``cuda.bindings.runtime``."""
    cuda = types.ModuleType("fakelocator.runtime.cuda")
    cuda.events = []

    class CudaError(RuntimeError):
        pass

    def check(result, what):
        err, *values = result
        if err != 0:
            raise CudaError(f"{what} failed: {err}")
        return values[0] if len(values) == 1 else tuple(values)

    class Stream:
        def __init__(self):
            self.handle = 0xABC0
            self.closed = False

        def synchronize(self):
            cuda.events.append(("synchronize", self.handle))

        def close(self):
            self.closed = True

    class DeviceBuffer:
        def __init__(self, nbytes):
            self.nbytes = int(nbytes)
            self.ptr = MEMORY.alloc(self.nbytes)

        def copy_from_host(self, array, stream=None):
            assert array.nbytes <= self.nbytes
            cuda.events.append(("h2d", self.ptr, getattr(stream, "handle", None)))
            MEMORY.write(self.ptr, array)

        def copy_to_host(self, array, stream=None):
            cuda.events.append(("d2h", self.ptr, getattr(stream, "handle", None)))
            array[...] = MEMORY.read(self.ptr, array.shape, array.dtype)

        def close(self):
            cuda.events.append(("free", self.ptr))

    class PinnedBuffer:
        def __init__(self, nbytes):
            self.nbytes = int(nbytes)
            self._data = bytearray(self.nbytes)
            self.ptr = id(self._data)

        def array(self, shape, dtype):
            count = int(np.prod(shape))
            return np.frombuffer(self._data, dtype=dtype, count=count).reshape(shape)

        def close(self):
            pass

    def set_device(index):
        cuda.events.append(("set_device", int(index)))

    def device_properties(index=0):
        return {"name": name, "compute_capability": tuple(compute_capability), "total_memory": 24 << 30}

    cuda.CudaError, cuda.check, cuda.Stream = CudaError, check, Stream
    cuda.DeviceBuffer, cuda.PinnedBuffer, cuda.device_properties = DeviceBuffer, PinnedBuffer, device_properties
    cuda.set_device = set_device

    cudart = types.ModuleType("cuda.bindings.runtime")
    cudart.cudaSetDevice = lambda index: (0,)
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    package = types.ModuleType("cuda")
    package.bindings = bindings
    package.__path__ = []
    bindings.__path__ = []
    return cuda, {"cuda": package, "cuda.bindings": bindings, "cuda.bindings.runtime": cudart}
