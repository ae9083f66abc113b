"""The one FAKE CUDA device of the tests: NOT CUDA, NOT a GPU.

Host memory stands in for device memory: ``DeviceBuffer.ptr`` and ``PinnedBuffer.ptr`` are host
addresses, so the native library's CPU kernels (or the CUDA kernels compiled for the CPU by
native/src/emulate.cpp) can stand in for the device kernels. What this fake keeps of CUDA is the
*ordering*: every copy, kernel and engine run is queued on its stream and runs only when the host
synchronizes (a stream, or an event) and everything it waits for (``Stream.wait(event)``) has run.
So a missing synchronization, a missing cross-stream wait, or host memory reused while a copy from
it is still queued gives wrong results here instead of passing by luck. Every copy and allocation
is logged, and copies are checked to go between pinned and device memory in the direction named.

``FakeDevice.module`` has the API of ``fakelocator.runtime.cuda`` that the backends and the pipeline
use; ``install(monkeypatch, device)`` puts it in ``sys.modules["fakelocator.runtime.cuda"]``, with
stand-ins for cuda-python's ``cuda.bindings.runtime``. The fake TensorRT (``fake_tensorrt.py``) runs
its engines on this device's streams and memory.
"""

from __future__ import annotations

import ctypes
import itertools
import time
import types
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime import cuda as _real  # importing it does nothing (cuda-python is imported at use)

#: The fake device's memory, as device_properties and memory_info report it.
TOTAL_MEMORY = 1 << 34

@dataclass
class Copy:
    kind: str  # "h2d" | "d2h" | "d2d"
    dst: int
    src: int
    nbytes: int
    stream: int


@dataclass
class _Op:
    run: object  # callable, or None for a wait
    wait_for: tuple | None = None  # (event, count): runnable once event.completed >= count
    what: str = ""


@dataclass
class FakeDevice:
    """Streams, events and memory of one fake device; see the module docstring."""

    copies: list[Copy] = field(default_factory=list)
    allocations: list[tuple[str, int]] = field(default_factory=list)  # ("device" | "pinned", nbytes)
    executed: list[str] = field(default_factory=list)  # what ran, in order
    kernels: list[tuple[str, int]] = field(default_factory=list)  # (name, stream handle) as enqueued
    count: int = 1  # devices that device_count() reports
    name: str = "NVIDIA Fake GPU"
    compute_capability: tuple[int, int] = (8, 9)
    current: int | None = None  # the device set_device made current

    def __post_init__(self):
        self.queues: dict[int, deque[_Op]] = {}
        self._handles = itertools.count(0x5000, 0x10)
        self._device: dict[int, tuple[int, np.ndarray]] = {}  # ptr -> (nbytes, backing)
        self._pinned: dict[int, tuple[int, np.ndarray]] = {}
        self.module = self._make_module()

    # ---- memory ------------------------------------------------------------------------------

    def _alloc(self, table: dict, kind: str, nbytes: int) -> int:
        backing = np.zeros(max(1, int(nbytes)), np.uint8)
        ptr = backing.ctypes.data
        table[ptr] = (int(nbytes), backing)
        self.allocations.append((kind, int(nbytes)))
        return ptr

    @staticmethod
    def _within(table: dict, ptr: int, nbytes: int) -> bool:
        return any(base <= ptr and ptr + nbytes <= base + size for base, (size, _) in table.items())

    def is_device(self, ptr: int, nbytes: int = 1) -> bool:
        return self._within(self._device, ptr, nbytes)

    def is_pinned(self, ptr: int, nbytes: int = 1) -> bool:
        return self._within(self._pinned, ptr, nbytes)

    # ---- streams -----------------------------------------------------------------------------

    def new_stream(self) -> int:
        handle = next(self._handles)
        self.queues[handle] = deque()
        return handle

    def enqueue(self, stream, fn, what: str) -> None:
        handle = int(getattr(stream, "handle", stream) or 0)
        if handle not in self.queues:
            raise AssertionError(f"{what}: enqueued on stream {handle:#x}, which is not a stream of this device (0: the legacy default stream)")
        self.queues[handle].append(_Op(fn, what=what))

    def _runnable(self, op: _Op) -> bool:
        if op.wait_for is None:
            return True
        event, count = op.wait_for
        return event.completed >= count

    def run_until(self, done, what: str) -> None:
        """Run queued work, round robin over streams, until ``done()``; a deadlock is an error."""
        while not done():
            progress = False
            for queue in self.queues.values():
                while queue and self._runnable(queue[0]):
                    op = queue.popleft()
                    if op.run is not None:
                        op.run()
                        self.executed.append(op.what)
                    progress = True
            if not progress and not done():
                raise AssertionError(f"{what} would wait forever: nothing queued can run")

    # ---- the fakelocator.runtime.cuda stand-in ------------------------------------------------

    def _make_module(self) -> types.ModuleType:
        device = self
        cuda = types.ModuleType("fakelocator.runtime.cuda")
        # What is not the device's own is the real module's: its constants, its error class (a
        # FakeLocatorError, which the pipeline's fallbacks catch) and its result check.
        # tests/runtime/test_fake_cuda.py checks names and signatures against runtime/cuda.py.
        cuda.COPY_KINDS, cuda.CudaError, cuda.check = _real.COPY_KINDS, _real.CudaError, _real.check

        def runtime():
            raise FakeLocatorError("the fake CUDA device has no cuda-python bindings (cuda.bindings.runtime)")

        class _Resource:
            def close(self) -> None:
                pass

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.close()

        class Stream(_Resource):
            def __init__(self, *, non_blocking: bool = True):
                self.handle = device.new_stream()
                self.closed = False

            def synchronize(self):
                queue = device.queues[self.handle]
                device.run_until(lambda: not queue, f"synchronize stream {self.handle:#x}")

            def wait(self, event):
                device.queues[self.handle].append(_Op(None, (event, event.recorded), f"wait event {id(event):#x}"))

            def close(self):
                self.closed = True

        class Event(_Resource):
            def __init__(self):
                self.recorded = self.completed = 0
                self.time = None

            def record(self, stream=None):
                self.recorded += 1
                count = self.recorded

                def reach():
                    self.completed, self.time = count, time.perf_counter()

                device.enqueue(stream, reach, "event")

            def synchronize(self):
                device.run_until(lambda: self.completed >= self.recorded, "event synchronize")

            @staticmethod
            def elapsed_ms(start, end):
                end.synchronize()
                start.synchronize()
                return (end.time - start.time) * 1000

        class DeviceBuffer(_Resource):
            def __init__(self, nbytes):
                self.nbytes = int(nbytes)
                self.ptr = device._alloc(device._device, "device", self.nbytes)
                self.closed = False

            def copy_from_host(self, array, stream=None):
                assert array.nbytes <= self.nbytes and array.flags.c_contiguous
                memcpy_async(self.ptr, array.ctypes.data, array.nbytes, "h2d", stream)
                if stream is None:
                    device.run_until(lambda: not any(device.queues.values()), "cudaMemcpy")

            def copy_to_host(self, array, stream=None):
                assert array.nbytes <= self.nbytes and array.flags.c_contiguous
                memcpy_async(array.ctypes.data, self.ptr, array.nbytes, "d2h", stream)
                return array

            def close(self):
                self.closed = True
                device._device.pop(self.ptr, None)

        class PinnedBuffer(_Resource):
            def __init__(self, nbytes):
                self.nbytes = int(nbytes)
                self.ptr = device._alloc(device._pinned, "pinned", self.nbytes)

            def array(self, shape, dtype=np.uint8):
                shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
                count = int(np.prod(shape))
                need = count * np.dtype(dtype).itemsize
                assert need <= self.nbytes, f"{need} bytes from a PinnedBuffer of {self.nbytes}"
                raw = (ctypes.c_char * max(1, need)).from_address(self.ptr)
                return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)

            def close(self):
                device._pinned.pop(self.ptr, None)

        def memcpy_async(dst, src, nbytes, kind, stream):
            dst, src, nbytes = int(dst), int(src), int(nbytes)
            host_ok = {"h2d": (device.is_device(dst, nbytes), device.is_pinned(src, nbytes) or stream is None),
                       "d2h": (device.is_pinned(dst, nbytes) or stream is None, device.is_device(src, nbytes)),
                       "d2d": (device.is_device(dst, nbytes), device.is_device(src, nbytes))}[kind]
            if not all(host_ok):
                raise AssertionError(f"memcpy_async {kind} of {nbytes} bytes between the wrong kinds of memory (async copies need pinned host memory)")
            handle = int(getattr(stream, "handle", stream) or 0)
            device.copies.append(Copy(kind, dst, src, nbytes, handle))
            if stream is None:
                ctypes.memmove(dst, src, nbytes)
                return
            device.enqueue(stream, lambda: ctypes.memmove(dst, src, nbytes), f"{kind} {nbytes}")

        def set_device(index):
            device.current = int(index)

        def device_count():
            return device.count

        def device_properties(index=0):
            return {"name": device.name, "compute_capability": device.compute_capability, "total_memory": TOTAL_MEMORY,
                    "multiprocessors": 1}

        def memory_info(index):
            return TOTAL_MEMORY - sum(size for size, _ in device._device.values()), TOTAL_MEMORY

        def runtime_version():
            return "12.6"

        cuda.runtime, cuda.Stream, cuda.Event, cuda.DeviceBuffer, cuda.PinnedBuffer = runtime, Stream, Event, DeviceBuffer, PinnedBuffer
        cuda.memcpy_async, cuda.set_device, cuda.device_count = memcpy_async, set_device, device_count
        cuda.device_properties, cuda.memory_info, cuda.runtime_version = device_properties, memory_info, runtime_version
        return cuda

    # ---- what the tests ask --------------------------------------------------------------------

    def idle(self) -> bool:
        """Nothing is left queued on any stream."""
        return not any(self.queues.values())

    def live_device_buffers(self) -> int:
        """Device allocations not yet freed."""
        return len(self._device)


# ---- the native library's kernels on the fake device --------------------------------------------


class _Kernels:
    """Stands in for the ctypes library inside a NativeLibrary: its ``fl_*_cuda`` calls check that
    their pointers are fake device memory and queue the work on the fake stream, where it runs the
    CPU implementation (``fl_*_cpu``) or, with ``emulated``, the library's own ``fl_*_cuda`` (the CUDA
    kernels compiled for the CPU). Descriptors are copied at the call, as a CUDA launch copies its
    parameters."""

    def __init__(self, real, device: FakeDevice, emulated: bool):
        self._real, self._device, self._emulated = real, device, emulated

    def __getattr__(self, name):
        return getattr(self._real, name)

    def _check(self, ptr, nbytes, what):
        if ptr and not self._device.is_device(int(ptr), nbytes):
            raise AssertionError(f"{what}: {int(ptr):#x} is not device memory")

    def _finish(self, status, what):
        if status != 0:
            raise AssertionError(f"{what} failed on the fake device: {self._real.fl_last_error().decode()}")

    def fl_preprocess_cuda(self, images, n, params, out, stream):
        images = type(images).from_buffer_copy(images)
        params = type(params._obj).from_buffer_copy(params._obj)
        for k in range(n):
            self._check(images[k].data, images[k].pitch * images[k].height, f"preprocess image {k}")
        self._check(out, 1, "preprocess output")
        real, emulated = self._real, self._emulated
        self._device.kernels.append(("preprocess", int(stream or 0)))

        def run():
            if emulated:
                status = real.fl_preprocess_cuda(images, n, ctypes.byref(params), out, None)
            else:
                status = real.fl_preprocess_cpu(images, n, ctypes.byref(params), out, 1)
            self._finish(status, "preprocess")

        self._device.enqueue(stream, run, "preprocess kernel")
        return 0

    def fl_postprocess_cuda(self, items, n, lut, opacity, stream):
        items = type(items).from_buffer_copy(items)
        lut_copy = (ctypes.c_uint8 * 768).from_buffer_copy((ctypes.c_uint8 * 768).from_address(lut)) if lut else None
        opacity_copy = (ctypes.c_float * 256).from_buffer_copy((ctypes.c_float * 256).from_address(opacity)) if opacity else None
        for k in range(n):
            it = items[k]
            self._check(it.map, it.map_pitch * it.map_height, f"postprocess map {k}")
            self._check(it.map_out, it.map_out_pitch * it.height, f"postprocess map output {k}")
            self._check(it.overlay_out, it.overlay_out_pitch * it.height, f"postprocess overlay output {k}")
            self._check(it.levels_out, it.levels_out_pitch * it.height, f"postprocess levels output {k}")
        real, emulated = self._real, self._emulated
        self._device.kernels.append(("postprocess", int(stream or 0)))

        def run():
            lut_ptr = ctypes.addressof(lut_copy) if lut_copy is not None else None
            opacity_ptr = ctypes.addressof(opacity_copy) if opacity_copy is not None else None
            if emulated:
                status = real.fl_postprocess_cuda(items, n, lut_ptr, opacity_ptr, None)
            else:
                status = real.fl_postprocess_cpu(items, n, lut_ptr, opacity_ptr, 1)
            self._finish(status, "postprocess")

        self._device.enqueue(stream, run, "postprocess kernel")
        return 0


    def fl_tiles_cuda(self, items, n, overlap, params, out, stream):
        items = type(items).from_buffer_copy(items)
        params = type(params._obj).from_buffer_copy(params._obj)
        for k in range(n):
            image = items[k].image
            self._check(image.data, image.pitch * image.height, f"tiles image {k}")
        self._check(out, 1, "tiles output")
        real, emulated = self._real, self._emulated
        self._device.kernels.append(("tiles", int(stream or 0)))

        def run():
            if emulated:
                status = real.fl_tiles_cuda(items, n, overlap, ctypes.byref(params), out, None)
            else:
                status = real.fl_tiles_cpu(items, n, overlap, ctypes.byref(params), out, 1)
            self._finish(status, "tiles")

        self._device.enqueue(stream, run, "tiles kernel")
        return 0

    def fl_stitch_cuda(self, items, n, stream):
        items = type(items).from_buffer_copy(items)
        for k in range(n):
            it = items[k]
            self._check(it.maps, it.tile_stride, f"stitch maps {k}")
            self._check(it.out, it.out_pitch * it.height, f"stitch output {k}")
        real, emulated = self._real, self._emulated
        self._device.kernels.append(("stitch", int(stream or 0)))

        def run():
            status = real.fl_stitch_cuda(items, n, None) if emulated else real.fl_stitch_cpu(items, n, 1)
            self._finish(status, "stitch")

        self._device.enqueue(stream, run, "stitch kernel")
        return 0


def device_library(path, device: FakeDevice, *, emulated: bool = False):
    """A ``NativeLibrary`` loaded from ``path`` whose device entry points run on ``device``."""
    from fakelocator.runtime import native

    lib = native.NativeLibrary(path)
    lib._lib = _Kernels(lib._lib, device, emulated)
    lib.has_cuda = True
    return lib


def cuda_bindings() -> dict[str, types.ModuleType]:
    """Stand-ins for cuda-python's ``cuda``, ``cuda.bindings`` and ``cuda.bindings.runtime`` (imports only)."""
    cudart = types.ModuleType("cuda.bindings.runtime")
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    package = types.ModuleType("cuda")
    package.bindings = bindings
    package.__path__, bindings.__path__ = [], []
    return {"cuda": package, "cuda.bindings": bindings, "cuda.bindings.runtime": cudart}


def install(monkeypatch, device: FakeDevice | None = None) -> FakeDevice:
    """Install ``device`` (a new one by default) as ``fakelocator.runtime.cuda``, with cuda-python stand-ins."""
    import sys

    device = device if device is not None else FakeDevice()
    monkeypatch.setitem(sys.modules, "fakelocator.runtime.cuda", device.module)
    for name, module in cuda_bindings().items():
        monkeypatch.setitem(sys.modules, name, module)
    return device
