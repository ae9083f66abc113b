"""The one FAKE ``tensorrt`` module of the tests. NOT TensorRT.

The API-contract tests install it in ``sys.modules`` to check which calls fakelocator makes, in
which order and with which arguments: network flags, builder flags, optimization profiles, the
timing cache, parser error handling, ``execute_async_v3`` on a non-default stream, output shapes
read after the input shape is set. Names and signatures follow TensorRT's bindings
(python/src/infer/pyCore.cpp and python/src/parsers/pyOnnx.cpp at release/10.16 and 11.1), and the
enum values those of each major version (include/NvInfer.h, NvOnnxParser.h); every name used here
is checked against the real bindings' wheels by tests/export/test_fake_tensorrt_names.py. They say
nothing about whether TensorRT builds or runs the models; the ``needs_tensorrt`` tests do.

Its engines run on the fake CUDA device (``fake_cuda.FakeDevice``): ``execute_async_v3`` queues
``tiny_net`` on the given stream, reading and writing the tensors at their bound device addresses,
so a missing synchronization gives wrong outputs here, as on a GPU.
"""

from __future__ import annotations

import ctypes
import enum
import json
import types
from dataclasses import dataclass, field

import numpy as np


def tiny_net(x: np.ndarray) -> dict[str, np.ndarray]:
    """What the fake engine computes from an (N, 3, h, w) input: a map that depends on the channel
    order (so a swapped red and blue shows), its mean as the score, channel means as features."""
    x = x.astype(np.float32)
    logits = np.float32(2) * x[:, 0:1] - x[:, 2:3] + np.float32(0.25) * x[:, 1:2]
    fakeness = (np.float32(1) / (np.float32(1) + np.exp(-logits))).astype(np.float32)  # (N, 1, h, w)
    return {
        "map": fakeness,
        "score": fakeness.mean(axis=(2, 3)).astype(np.float32),  # (N, 1)
        "features": x.mean(axis=(2, 3)).astype(np.float32),  # (N, 3)
    }


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:2])


def enums(version: str) -> dict[str, type[enum.IntEnum]]:
    """The enums fakelocator uses, with the values of this TensorRT version (NvInfer.h, NvOnnxParser.h).

    TensorRT 11 removed the weak-typing precision flags (``BuilderFlag.FP16``) and renumbered the
    flags after them; ``STRONGLY_TYPED`` became 0 (deprecated: always on). ``SAME_COMPUTE_CAPABILITY``
    appeared in 10.9.
    """
    v = _version(version)
    if v >= (11,):
        builder = dict(TF32=6, VERSION_COMPATIBLE=12, EXCLUDE_LEAN_RUNTIME=13)
        network = dict(STRONGLY_TYPED=0, PREFER_JIT_PYTHON_PLUGINS=1, PREFER_AOT_PYTHON_PLUGINS=2)
    else:
        builder = dict(FP16=0, TF32=6, VERSION_COMPATIBLE=13, EXCLUDE_LEAN_RUNTIME=14)
        network = dict(EXPLICIT_BATCH=0, STRONGLY_TYPED=1, PREFER_JIT_PYTHON_PLUGINS=2, PREFER_AOT_PYTHON_PLUGINS=3)
    levels = dict(NONE=0, AMPERE_PLUS=1)
    if v >= (10, 9):
        levels["SAME_COMPUTE_CAPABILITY"] = 2
    errors = ("SUCCESS INTERNAL_ERROR MEM_ALLOC_FAILED MODEL_DESERIALIZE_FAILED INVALID_VALUE INVALID_GRAPH INVALID_NODE "
              "UNSUPPORTED_GRAPH UNSUPPORTED_NODE UNSUPPORTED_NODE_ATTR UNSUPPORTED_NODE_INPUT UNSUPPORTED_NODE_DATATYPE "
              "UNSUPPORTED_NODE_DYNAMIC UNSUPPORTED_NODE_SHAPE REFIT_FAILED").split()
    return {
        "BuilderFlag": enum.IntEnum("BuilderFlag", builder),
        "NetworkDefinitionCreationFlag": enum.IntEnum("NetworkDefinitionCreationFlag", network),
        "HardwareCompatibilityLevel": enum.IntEnum("HardwareCompatibilityLevel", levels),
        "MemoryPoolType": enum.IntEnum("MemoryPoolType", dict(WORKSPACE=0, DLA_MANAGED_SRAM=1)),
        "TensorIOMode": enum.IntEnum("TensorIOMode", dict(NONE=0, INPUT=1, OUTPUT=2)),
        "DataType": enum.IntEnum("DataType", dict(FLOAT=0, HALF=1, INT8=2, INT32=3, BOOL=4)),
        "Severity": enum.IntEnum("Severity", dict(INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4)),
        "ErrorCode": enum.IntEnum("ErrorCode", {name: i for i, name in enumerate(errors)}),
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


def make_tensorrt(version: str = "10.16.1.11", *, device=None):
    """A fresh fake ``tensorrt`` module of ``version`` and its ``State``; its engines run on ``device``
    (a ``fake_cuda.FakeDevice``; needed only to run engines, not to build them)."""
    state = State()
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.state = state
    for name, values in enums(version).items():
        setattr(trt, name, values)

    class ILogger:
        Severity = trt.Severity
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (trt.Severity[n] for n in ("INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"))

        def __init__(self):
            pass

        def log(self, severity, msg):
            raise NotImplementedError

    trt.ILogger = ILogger
    trt.float32, trt.float16 = trt.DataType.FLOAT, trt.DataType.HALF
    trt.nptype = lambda dtype: {trt.DataType.FLOAT: np.float32, trt.DataType.HALF: np.float16}[trt.DataType(dtype)]

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
            return trt.ErrorCode[self.e.get("code", "UNSUPPORTED_NODE")]  # an enum, as in TensorRT

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
            self.hardware_compatibility_level_value = trt.HardwareCompatibilityLevel.NONE
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
            io = [(t.name, trt.TensorIOMode.INPUT, t.dtype, t.shape) for t in network.inputs]
            io += [(t.name, trt.TensorIOMode.OUTPUT, t.dtype, t.shape) for t in network.outputs]
            return plan_bytes(io, config.profiles[0].shapes)

    class Context:
        def __init__(self, engine):
            self.engine = engine
            self.input_shape = None
            self.addresses = {}
            self.executions: list[tuple[tuple, int]] = []  # (input shape, stream handle)

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
                self.engine.logger.log(ILogger.ERROR, "fake engine: execution refused")
                return False
            if device is None:
                raise AssertionError("this fake TensorRT has no device to run engines on: make_tensorrt(device=...)")
            shape, addresses = self.input_shape, dict(self.addresses)
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype("image")))
            self.executions.append((shape, int(stream_handle)))

            def run():  # on the stream, when the fake device gets to it
                count = int(np.prod(shape))
                raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(addresses["image"])
                x = np.frombuffer(raw, dtype=dtype, count=count).reshape(shape).astype(np.float32)
                for name, value in tiny_net(x).items():
                    if name in addresses:
                        ctypes.memmove(addresses[name], np.ascontiguousarray(value).ctypes.data, value.nbytes)

            device.enqueue(stream_handle, run, "engine")
            return True

    class Engine:
        def __init__(self, spec, logger):
            self.io = spec["io"]
            self.profile = {k: [tuple(s) for s in v] for k, v in spec["profile"].items()}
            self.logger = logger

        num_io_tensors = property(lambda self: len(self.io))

        def get_tensor_name(self, i):
            return self.io[i]["name"]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode(next(t["mode"] for t in self.io if t["name"] == name))

        def get_tensor_dtype(self, name):
            return trt.DataType(next(t["dtype"] for t in self.io if t["name"] == name))

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
            return Engine(json.loads(data[len(b"FAKEPLAN"):]), self.logger)

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    # Every fake class, for the check of their names against the real bindings (test_fake_tensorrt_names.py).
    trt.FAKE_CLASSES = (ILogger, Tensor, Network, ParserError, OnnxParser, TimingCache, Config, Profile, Builder,
                        Context, Engine, Runtime)
    return trt, state


def plan_bytes(io, profile: dict) -> bytes:
    """A fake plan: ``io`` as (name, TensorIOMode, DataType, shape) and the profile {input: (min, opt, max)}."""
    tensors = [{"name": n, "mode": int(m), "dtype": int(d), "shape": [int(x) for x in shape]} for n, m, d, shape in io]
    return b"FAKEPLAN" + json.dumps({"io": tensors, "profile": {k: [list(s) for s in v] for k, v in profile.items()}}).encode()


def write_engine(path, trt, device, contract, *, batch=(1, 4), input_dtype=np.float32):
    """A fake engine running ``tiny_net`` at the contract's size for batches ``batch`` (min, max), with
    its sidecar for ``trt``'s version and ``device``'s GPU, as ``fakelocator export engine`` leaves one."""
    import hashlib
    from pathlib import Path

    from fakelocator.runtime.engine_sidecar import EngineSidecar, ShapeProfile, sidecar_path

    path = Path(path)
    (h, w), (lo, hi) = contract.size, batch
    half = np.dtype(input_dtype) == np.float16
    io = [("image", trt.TensorIOMode.INPUT, trt.DataType.HALF if half else trt.DataType.FLOAT, (-1, 3, h, w))]
    io += [(name, trt.TensorIOMode.OUTPUT, trt.DataType.FLOAT, shape)
           for name, shape in (("map", (-1, 1, h, w)), ("score", (-1, 1)), ("features", (-1, 3)))]
    profile = ShapeProfile("image", (lo, 3, h, w), (hi, 3, h, w), (hi, 3, h, w))
    plan = plan_bytes(io, {"image": (profile.min, profile.opt, profile.max)})
    path.write_bytes(plan)
    EngineSidecar(
        tensorrt_version=trt.__version__, gpu_name=device.name, compute_capability=tuple(device.compute_capability),
        precision="fp16" if half else "fp32", strongly_typed=True, profiles=(profile,), onnx_path="tiny.onnx",
        onnx_sha256="0" * 64, engine_sha256=hashlib.sha256(plan).hexdigest(), preprocessing=contract.to_dict(),
    ).write(sidecar_path(path))
    return path


def install(monkeypatch, version: str = "10.16.1.11", device=None):
    """Install a fake ``tensorrt`` of ``version`` running on ``device``; returns (trt, state)."""
    import sys

    trt, state = make_tensorrt(version, device=device)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    return trt, state
