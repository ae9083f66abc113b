"""Which ONNX file of a model to run: its fp32 export or its INT8 (QDQ) companion, only when asked.

A model's files sit side by side under one stem (``model.onnx``, ``model.fp16.onnx``,
``model.int8.onnx``; the embedded default model too). ``precision``:

- None: the file as given (the embedded model: its fp32 ``model.onnx``) — the default;
- "fp32": ``model.onnx``, also when ``model.int8.onnx`` was given;
- "int8": ``model.int8.onnx`` (an error naming the file and the export command when it is missing);
- "auto": the INT8 file when it exists, the model runs on the CPU (ONNX Runtime) and the CPU has
  8-bit dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX: ONNX Runtime's U8S8 kernels are
  1.4 × fp32 there, docs/benchmarks.md); fp32 otherwise. Without VNNI the U8S8 kernels use an
  instruction that can saturate and the speed-up was not measured, so auto keeps fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fakelocator.errors import FakeLocatorError

PRECISIONS = ("auto", "fp32", "int8")
INT8_SUFFIX = ".int8.onnx"
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class PrecisionChoice:
    path: Path
    precision: str  # "fp32" | "int8"
    reason: str


def cpu_int8_flags(cpuinfo: str | None = None) -> tuple[str, ...]:
    """The CPU's 8-bit dot-product flags among ``VNNI_FLAGS`` (Linux ``/proc/cpuinfo``; () where unreadable)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return tuple(f for f in VNNI_FLAGS if f in flags)


def companions(model: str | Path) -> tuple[Path, Path]:
    """(fp32 file, int8 file) of a model's ONNX stem: ``a/model.onnx`` ↔ ``a/model.int8.onnx``."""
    path = Path(model)
    name = path.name
    if name.lower().endswith(INT8_SUFFIX):
        stem = name[: -len(INT8_SUFFIX)]
    elif name.lower().endswith(".onnx"):
        stem = name[: -len(".onnx")]
    else:
        raise FakeLocatorError(f"model {model}: --precision picks between ONNX files (model.onnx, model.int8.onnx); "
                               "this is not one")
    return path.with_name(stem + ".onnx"), path.with_name(stem + INT8_SUFFIX)


def choose(model: str | Path, precision: str | None, *, on_cpu: bool, cpuinfo: str | None = None) -> PrecisionChoice:
    """The file to load for ``precision`` (module docstring); ``on_cpu``: the model will run on the CPU."""
    if precision is None:
        path = Path(model)
        return PrecisionChoice(path, "int8" if path.name.lower().endswith(INT8_SUFFIX) else "fp32", "the file given")
    if precision not in PRECISIONS:
        raise FakeLocatorError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    fp32, int8 = companions(model)
    if precision == "fp32":
        if not fp32.is_file():
            raise FakeLocatorError(f"--precision fp32: {fp32} does not exist")
        return PrecisionChoice(fp32, "fp32", "asked for fp32")
    if precision == "int8":
        if not int8.is_file():
            raise FakeLocatorError(f"--precision int8: {int8} does not exist; make it with: "
                                   f"fakelocator export onnx {fp32} --int8 -o {int8}")
        return PrecisionChoice(int8, "int8", "asked for int8")
    if not int8.is_file():
        return PrecisionChoice(fp32, "fp32", f"auto: no {int8.name}")
    if not on_cpu:
        return PrecisionChoice(fp32, "fp32", "auto: not on the CPU (INT8 on a GPU runs as a TensorRT engine: export engine --int8)")
    flags = cpu_int8_flags(cpuinfo)
    if not flags:
        return PrecisionChoice(fp32, "fp32", "auto: this CPU has no VNNI/AMX 8-bit dot products")
    return PrecisionChoice(int8, "int8", f"auto: the CPU has {', '.join(flags)}")
