"""TensorRT as the runtime uses it: the lazy import with its install hint, the logger, the device.

``tensorrt`` is imported when a function runs, never at import. The engine builder
(``fakelocator.export.tensorrt_build``) uses these too; the dependency only goes that way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.engine_sidecar import Environment

INSTALL_HINT = (
    "pip install tensorrt-cu12 (CUDA 12) or tensorrt-cu13 (CUDA 13); its libraries download from NVIDIA's "
    "index pypi.nvidia.com. See docs/export.md"
)


class TensorRTMissing(FakeLocatorError):
    """The tensorrt package cannot be imported."""


def import_tensorrt() -> ModuleType:
    try:
        return importlib.import_module("tensorrt")
    except ImportError as e:
        raise TensorRTMissing(f"TensorRT is not installed ({e}); {INSTALL_HINT}") from None


def tensorrt_available() -> tuple[bool, str]:
    try:
        trt = import_tensorrt()
    except TensorRTMissing as e:
        return False, str(e)
    return True, f"TensorRT {trt.__version__}"


def cuda_module() -> ModuleType:
    """``fakelocator.runtime.cuda``, looked up when called (API-contract tests put a fake in its place).

    Importing it needs nothing; its first call without cuda-python raises one line naming
    ``fakelocator[gpu]``.
    """
    return importlib.import_module("fakelocator.runtime.cuda")


def use_device(index: int) -> Environment:
    """Make GPU ``index`` current and describe it with the installed TensorRT."""
    trt = import_tensorrt()
    cuda = cuda_module()
    cuda.set_device(int(index))
    props = cuda.device_properties(int(index))
    return Environment(trt.__version__, str(props["name"]), tuple(int(v) for v in props["compute_capability"]))


def make_logger(trt, log: Callable[[str], None], verbose: bool = False):
    """A ``trt.ILogger`` that forwards warnings and errors (everything when verbose) and keeps the errors."""

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            if int(severity) <= int(trt.ILogger.ERROR):
                self.errors.append(msg)
            if verbose or int(severity) <= int(trt.ILogger.WARNING):
                log(f"[TensorRT] {msg}")

    return Logger()
