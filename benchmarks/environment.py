"""Where and how a benchmark ran: machine, load, library versions, git commit, date, command.

Every number in bench.json is only meaningful next to this record, so it is collected in full and
never guessed: a package that is not installed is recorded as null, not as a version.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.metadata
import os
import platform
import shlex
import sys
from pathlib import Path

PACKAGES = {  # import name → distribution names to ask for a version, first found wins
    "numpy": ("numpy",),
    "cv2": ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "onnx": ("onnx",),
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"),
    "cuda-python": ("cuda-python", "cuda-bindings"),
    "pillow": ("pillow",),
    "matplotlib": ("matplotlib",),
}


def _version(distributions: tuple[str, ...]) -> str | None:
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def git_commit(path: Path | None = None) -> dict | None:
    """The commit of the checkout the fakelocator package was imported from, and whether it was modified."""
    from fakelocator.gitstate import git_state

    return git_state(path)


def gpu_description(device: str) -> dict | None:
    """Name, compute capability, memory and CUDA runtime of a CUDA device (cuda-python); None on the CPU.

    Not through torch, which would load itself and a CUDA context into a process that may be
    measuring the torch-free runtime.
    """
    if not device.startswith("cuda"):
        return None
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    try:
        from fakelocator.runtime import cuda

        props = cuda.device_properties(index)
        return {**props, "compute_capability": list(props["compute_capability"]), "cuda_runtime": cuda.runtime_version()}
    except Exception as e:  # noqa: BLE001 - no driver, no cuda-python: recorded, not fatal
        return {"error": f"{type(e).__name__}: {e}"}


def native_library() -> dict | None:
    from fakelocator.runtime import native

    lib = native.load()
    if lib is None:
        return None
    return {"path": str(lib.path), "has_cuda": bool(lib.has_cuda)}


def describe(argv: list[str] | None, device: str) -> dict:
    """The environment record of bench.json."""
    import fakelocator

    versions = {"python": platform.python_version(), "fakelocator": fakelocator.__version__}
    versions.update({name: _version(dists) for name, dists in PACKAGES.items()})
    extra = {}
    if versions["onnxruntime"]:
        try:
            extra["onnxruntime_providers"] = importlib.import_module("onnxruntime").get_available_providers()
        except ImportError:
            pass
    if versions["cv2"]:
        try:
            cv2 = importlib.import_module("cv2")
            extra["opencv_threads"] = cv2.getNumThreads()
            extra["opencv_build_ipp"] = "IPP" in cv2.getBuildInformation() and cv2.ipp.useIPP()
        except ImportError:
            pass
    command = None if argv is None else shlex.join(["fakelocator", "bench", *argv])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "load_average_start": load_average(),
        "device": device,
        "gpu": gpu_description(device),
        "native_library": native_library(),
        "versions": versions,
        **extra,
        "git": git_commit(),
        "environment_variables": {k: os.environ[k] for k in sorted(os.environ)
                                  if k.startswith(("OMP_", "MKL_", "OPENCV_", "CUDA_VISIBLE", "FAKELOCATOR_"))},
    }
