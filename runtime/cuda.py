"""CUDA streams, device memory and pinned host memory through cuda-python (``cuda.bindings.runtime``).

Used by the TensorRT backend and by the native GPU pre/post-processing path, so that the GPU
pipeline needs neither torch nor pycuda. ``cuda.bindings.runtime`` is imported inside the functions
that need it: importing this module does nothing, and without cuda-python every call raises a
:class:`FakeLocatorError` that says what to install.

Every object here owns one CUDA resource and frees it in ``close()`` (also on ``with`` exit, and,
as a last resort, when garbage-collected). Pointers and handles are plain ``int`` so that they can
go to TensorRT (``set_tensor_address``, ``execute_async_v3``) and to the native library as they are.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np

from fakelocator.errors import FakeLocatorError


def runtime():
    """The ``cuda.bindings.runtime`` module, or FakeLocatorError saying how to get it."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError as e:
        raise FakeLocatorError(
            "the GPU path needs cuda-python (cuda.bindings.runtime): pip install 'fakelocator[gpu]' "
            f"or pip install cuda-python ({e})"
        ) from None
    return cudart


class CudaError(FakeLocatorError):
    """A CUDA runtime call failed. ``call`` names it; ``code`` is the cudaError_t value, ``name`` its name."""

    def __init__(self, call: str, code: int, name: str, description: str):
        super().__init__(f"{call} failed: {name} ({description})")
        self.call, self.code, self.name = call, code, name


def check(result, what: str):
    """Unpacks a cuda-python result ``(err, *values)``: the values (None, one value, or a tuple).

    Raises :class:`CudaError` naming ``what`` when ``err`` is not success.
    """
    if not isinstance(result, tuple):
        result = (result,)
    err, values = result[0], result[1:]
    if int(err) != 0:
        cudart = runtime()
        name = getattr(err, "name", str(err))
        description = "unknown error"
        if isinstance(err, cudart.cudaError_t):
            text = cudart.cudaGetErrorString(err)
            description = text[1].decode() if isinstance(text, tuple) else str(text)
        raise CudaError(what, int(err), name, description)
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def device_count() -> int:
    """CUDA devices visible to this process; 0 when there is no driver or no device."""
    cudart = runtime()
    err, count = cudart.cudaGetDeviceCount()
    no_gpu = (cudart.cudaError_t.cudaErrorNoDevice, cudart.cudaError_t.cudaErrorInsufficientDriver)
    if err in no_gpu:
        return 0
    return check((err, count), "cudaGetDeviceCount")


def set_device(index: int) -> None:
    """Make GPU ``index`` current on the calling thread (the device that allocations and streams use)."""
    check(runtime().cudaSetDevice(int(index)), f"cudaSetDevice({index})")


def memory_info(index: int) -> tuple[int, int]:
    """(free, total) bytes of GPU ``index`` (``cudaMemGetInfo``; all processes' use counts), made current first."""
    set_device(index)
    free, total = check(runtime().cudaMemGetInfo(), "cudaMemGetInfo")
    return int(free), int(total)


def runtime_version() -> str:
    """The CUDA runtime's version, e.g. "12.6" (``cudaRuntimeGetVersion`` gives 12060)."""
    version = int(check(runtime().cudaRuntimeGetVersion(), "cudaRuntimeGetVersion"))
    return f"{version // 1000}.{version % 1000 // 10}"


#: ``memcpy_async`` directions.
COPY_KINDS = ("h2d", "d2h", "d2d")


def memcpy_async(dst: int, src: int, nbytes: int, kind: str, stream) -> None:
    """Copies ``nbytes`` from address ``src`` to ``dst`` on ``stream``; returns before the copy runs.

    ``kind`` is "h2d", "d2h" or "d2d". Host memory must be pinned (a :class:`PinnedBuffer`) for
    the copy to be truly asynchronous, and must stay untouched until the stream has run it.
    """
    if kind not in COPY_KINDS:
        raise FakeLocatorError(f"memcpy_async: kind must be one of {COPY_KINDS}, got {kind!r}")
    if int(nbytes) < 0:
        raise FakeLocatorError(f"memcpy_async: nbytes must be >= 0, got {nbytes}")
    if int(nbytes) == 0:
        return
    cudart = runtime()
    kinds = cudart.cudaMemcpyKind
    direction = {
        "h2d": kinds.cudaMemcpyHostToDevice,
        "d2h": kinds.cudaMemcpyDeviceToHost,
        "d2d": kinds.cudaMemcpyDeviceToDevice,
    }[kind]
    check(cudart.cudaMemcpyAsync(int(dst), int(src), int(nbytes), direction, _stream_handle(stream)), f"cudaMemcpyAsync ({kind}, {nbytes} bytes)")


def device_properties(index: int = 0) -> dict:
    """name, compute_capability (major, minor), total_memory (bytes) and multiprocessors of one device."""
    cudart = runtime()
    props = check(cudart.cudaGetDeviceProperties(index), f"cudaGetDeviceProperties({index})")
    name = props.name
    if isinstance(name, bytes):
        name = name.split(b"\0", 1)[0].decode(errors="replace")
    return {
        "name": name,
        "compute_capability": (int(props.major), int(props.minor)),
        "total_memory": int(props.totalGlobalMem),
        "multiprocessors": int(props.multiProcessorCount),
    }


class _Resource:
    """Owns one CUDA resource; subclasses set ``_release`` (a callable) once it is allocated."""

    _release = None

    def close(self) -> None:
        """Frees the resource. Idempotent."""
        release, self._release = self._release, None
        if release is not None:
            check(release(), f"{type(self).__name__}.close")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # at interpreter exit the driver may already be gone
            pass


class Stream(_Resource):
    """A CUDA stream. ``handle`` is the ``cudaStream_t`` as an int (what TensorRT and the native library take).

    Non-blocking by default: it does not synchronize with the legacy default stream.
    """

    def __init__(self, *, non_blocking: bool = True):
        cudart = runtime()
        flags = cudart.cudaStreamNonBlocking if non_blocking else cudart.cudaStreamDefault
        stream = check(cudart.cudaStreamCreateWithFlags(flags), "cudaStreamCreateWithFlags")
        self.handle = int(stream)
        self._release = lambda: cudart.cudaStreamDestroy(stream)
        self._synchronize = lambda: cudart.cudaStreamSynchronize(stream)

    def synchronize(self) -> None:
        """Waits for everything enqueued so far; asynchronous errors surface here."""
        check(self._synchronize(), "cudaStreamSynchronize")

    def wait(self, event: "Event") -> None:
        """Work enqueued on this stream from now on waits until ``event`` (recorded on any stream) has happened."""
        check(runtime().cudaStreamWaitEvent(self.handle, event._event, 0), "cudaStreamWaitEvent")

    def __repr__(self) -> str:
        return f"Stream(handle={self.handle:#x})"


def _host_array(array: np.ndarray, what: str, writable: bool) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise FakeLocatorError(f"{what} must be a numpy array, got {type(array).__name__}")
    if not array.flags.c_contiguous:
        raise FakeLocatorError(f"{what} must be C-contiguous (np.ascontiguousarray)")
    if writable and not array.flags.writeable:
        raise FakeLocatorError(f"{what} must be writeable")
    return array


def _stream_handle(stream) -> int:
    return 0 if stream is None else int(getattr(stream, "handle", stream))


class DeviceBuffer(_Resource):
    """``nbytes`` of device memory (``cudaMalloc``); ``ptr`` is its address as an int."""

    def __init__(self, nbytes: int):
        if int(nbytes) < 0:
            raise FakeLocatorError(f"DeviceBuffer size must be >= 0, got {nbytes}")
        cudart = runtime()
        self.nbytes = int(nbytes)
        self.ptr = int(check(cudart.cudaMalloc(max(1, self.nbytes)), f"cudaMalloc({self.nbytes} bytes)"))
        ptr = self.ptr
        self._release = lambda: cudart.cudaFree(ptr)

    def _copy(self, dst: int, src: int, nbytes: int, kind, stream, what: str) -> None:
        if self._release is None:
            raise FakeLocatorError(f"{what}: the DeviceBuffer is closed")
        if nbytes > self.nbytes:
            raise FakeLocatorError(f"{what}: {nbytes} bytes do not fit a DeviceBuffer of {self.nbytes} bytes")
        cudart = runtime()
        if stream is None:
            check(cudart.cudaMemcpy(dst, src, nbytes, kind), what)
        else:
            check(cudart.cudaMemcpyAsync(dst, src, nbytes, kind, _stream_handle(stream)), what)

    def copy_from_host(self, array: np.ndarray, stream=None) -> None:
        """Host → device, into the start of the buffer. With ``stream`` the copy is asynchronous:
        keep ``array`` alive and unchanged until the stream has run it (use pinned memory to overlap)."""
        array = _host_array(array, "copy_from_host source", writable=False)
        kind = runtime().cudaMemcpyKind.cudaMemcpyHostToDevice
        self._copy(self.ptr, array.ctypes.data, array.nbytes, kind, stream, "cudaMemcpy host to device")

    def copy_to_host(self, array: np.ndarray, stream=None) -> np.ndarray:
        """Device → host, from the start of the buffer, filling ``array``; returns it. With
        ``stream``, read ``array`` only after the stream has been synchronized."""
        array = _host_array(array, "copy_to_host destination", writable=True)
        kind = runtime().cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._copy(array.ctypes.data, self.ptr, array.nbytes, kind, stream, "cudaMemcpy device to host")
        return array

    def __repr__(self) -> str:
        return f"DeviceBuffer(ptr={self.ptr:#x}, nbytes={self.nbytes})"


class PinnedBuffer(_Resource):
    """``nbytes`` of page-locked host memory (``cudaMallocHost``): the source and destination of
    truly asynchronous copies. :meth:`array` gives numpy views of it."""

    def __init__(self, nbytes: int):
        if int(nbytes) < 0:
            raise FakeLocatorError(f"PinnedBuffer size must be >= 0, got {nbytes}")
        cudart = runtime()
        self.nbytes = int(nbytes)
        self.ptr = int(check(cudart.cudaMallocHost(max(1, self.nbytes)), f"cudaMallocHost({self.nbytes} bytes)"))
        ptr = self.ptr
        self._release = lambda: cudart.cudaFreeHost(ptr)

    def array(self, shape, dtype=np.uint8) -> np.ndarray:
        """A C-contiguous numpy view of the start of the buffer. Views keep the buffer from being
        garbage-collected, but must not be used after :meth:`close`."""
        if self._release is None:
            raise FakeLocatorError("PinnedBuffer.array: the buffer is closed")
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
        dtype = np.dtype(dtype)
        count = math.prod(shape)
        need = count * dtype.itemsize
        if need > self.nbytes:
            raise FakeLocatorError(f"an array of shape {shape} and dtype {dtype} needs {need} bytes; the PinnedBuffer has {self.nbytes}")
        raw = (ctypes.c_char * max(1, need)).from_address(self.ptr)
        raw.owner = self  # the view's base chain keeps this buffer alive
        return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)

    def __repr__(self) -> str:
        return f"PinnedBuffer(ptr={self.ptr:#x}, nbytes={self.nbytes})"


class Event(_Resource):
    """A CUDA event for timing work on a stream (``elapsed_ms(start, end)``)."""

    def __init__(self):
        cudart = runtime()
        event = check(cudart.cudaEventCreate(), "cudaEventCreate")
        self._event = event
        self._release = lambda: cudart.cudaEventDestroy(event)

    def record(self, stream=None) -> None:
        check(runtime().cudaEventRecord(self._event, _stream_handle(stream)), "cudaEventRecord")

    def synchronize(self) -> None:
        check(runtime().cudaEventSynchronize(self._event), "cudaEventSynchronize")

    @staticmethod
    def elapsed_ms(start: "Event", end: "Event") -> float:
        """Milliseconds between two recorded events (waits for ``end``)."""
        end.synchronize()
        return float(check(runtime().cudaEventElapsedTime(start._event, end._event), "cudaEventElapsedTime"))
