"""A TensorRT engine as the runtime knows it without TensorRT: pure, and tested on any machine.

- the optimization profile of the ``image`` input (``ShapeProfile``, ``make_profile``);
- the build options recorded with an engine (``BuildOptions``; building itself is
  ``fakelocator.export.tensorrt_build``);
- the sidecar ``model.engine.json`` that travels with the pure plan file ``model.engine``: TensorRT
  version, GPU and compute capability, precision, profiles, the ONNX's sha256, the preprocessing
  contract and the model config;
- whether an engine can run here (same TensorRT, same GPU, unless built version- or
  hardware-compatible), with a message naming the mismatch and the command that rebuilds it.

``engine_cache.py`` keeps one engine per machine for an ONNX; ``tensorrt_lib.py`` imports TensorRT;
``backends/tensorrt.py`` runs engines.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fakelocator.errors import FakeLocatorError
from fakelocator.files import atomic_write_bytes
from fakelocator.metadata import DEFAULT_THRESHOLD

SCHEMA = "fakelocator.engine/1"
HARDWARE_LEVELS = ("none", "ampere_plus", "same_compute_capability")
PRECISIONS = ("auto", "fp32", "fp16", "int8")
DEFAULT_BATCH = (1, 8, 32)

#: (built, running) TensorRT major versions NVIDIA supports for version-compatible engines across majors.
CROSS_MAJOR_COMPATIBLE = {(8, 9), (8, 10), (10, 11)}


# ---- profiles -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapeProfile:
    """One TensorRT optimization profile for the ``image`` input: (N, 3, H, W) at min, opt and max."""

    input: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ShapeProfile":
        return cls(d["input"], tuple(d["min"]), tuple(d["opt"]), tuple(d["max"]))

    @property
    def batch(self) -> tuple[int, int, int]:
        return self.min[0], self.opt[0], self.max[0]

    def accepts(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == len(self.min) and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))

    def describe(self) -> str:
        def fmt(s):
            return "x".join(str(d) for d in s)

        return f"{self.input}: min {fmt(self.min)}, opt {fmt(self.opt)}, max {fmt(self.max)}"


def make_profile(
    input_name: str,
    onnx_shape: tuple[int | str | None, ...],
    batch: tuple[int, int, int],
    hw: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None,
    contract_size: tuple[int, int],
    *,
    native: bool = False,
) -> tuple[ShapeProfile, list[str]]:
    """The profile for an ONNX input of shape (N, 3, H, W) whose dims are ints or named dynamic axes.

    ``native``: the model is made for ``native`` analysis, whose every input is a tile of
    ``contract_size``: the profile is batch-only dynamic, H × W the tile's.

    Returns the profile and notes for the user (e.g. a default chosen for dynamic H/W).
    """
    if len(onnx_shape) != 4:
        raise FakeLocatorError(f"input {input_name!r} has shape {onnx_shape}; expected (N, 3, H, W)")
    notes = []
    n, c, h, w = onnx_shape
    if not isinstance(c, int):
        raise FakeLocatorError(f"input {input_name!r}: the channel axis must be fixed at 3, got {c!r}")
    if isinstance(n, int) and batch != (n, n, n):
        raise FakeLocatorError(f"input {input_name!r} has a fixed batch of {n}; --batch must be {n} (got {batch})")
    static_hw = isinstance(h, int) and isinstance(w, int)
    if native and hw is not None and any(size != tuple(contract_size) for size in hw):
        raise FakeLocatorError(
            f"input {input_name!r}: the model is made for native analysis, whose inputs are its "
            f"{contract_size[0]}x{contract_size[1]} tiles; --hw does not apply"
        )
    if native and static_hw and (h, w) != tuple(contract_size):
        raise FakeLocatorError(f"input {input_name!r} is {h}x{w} but the model's native tiles are "
                               f"{contract_size[0]}x{contract_size[1]}")
    if static_hw:
        if hw is not None and any(size != (h, w) for size in hw):
            raise FakeLocatorError(
                f"input {input_name!r} has a fixed size {h}x{w}; --hw applies only to an ONNX exported with dynamic H/W"
            )
        hw = ((h, w),) * 3
    elif hw is None and native:
        hw = (tuple(contract_size),) * 3
        notes.append(f"native analysis: the engine takes {contract_size[0]}x{contract_size[1]} tiles (dynamic batch only)")
    elif hw is None:
        hw = (contract_size,) * 3
        notes.append(
            f"the ONNX has dynamic height/width; no --hw given, so the engine takes {contract_size[0]}x{contract_size[1]} "
            "only (the preprocessing contract's size)"
        )
    shapes = [(b, c, size[0], size[1]) for b, size in zip(batch, hw)]
    return ShapeProfile(input_name, *shapes), notes


# ---- build options ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildOptions:
    """How to build an engine. Everything but ``timing_cache`` goes into the engine cache key.

    Args:
        batch: (min, opt, max) batch of the optimization profile.
        hw: (min, opt, max) (height, width) for an ONNX with dynamic H/W; None: its fixed size, or the contract's.
        precision: "auto" (follow the ONNX), "fp16" (convert an fp32 ONNX to mixed precision first),
            "fp32" (refuse an fp16 ONNX) or "int8" (require an INT8 QDQ ONNX made for TensorRT).
        weak_fp16: build a weakly typed network with TensorRT's FP16 builder flag instead (deprecated
            in TensorRT 10.12, removed in 11); only on explicit request.
        tf32: allow TF32 for fp32 math (TensorRT's default on Ampere and later).
        workspace: workspace memory pool limit in bytes; None: TensorRT's default (the device's memory).
        optimization_level: builder optimization level 0–5 (TensorRT's default 3); higher builds
            longer and may run faster.
        hardware_compatibility: "none", "ampere_plus" or "same_compute_capability".
        version_compatible: runs on later TensorRT versions too (embeds the lean runtime unless
            ``exclude_lean_runtime``); slower.
        timing_cache: a file the builder's timing cache is loaded from and saved to.
    """

    batch: tuple[int, int, int] = DEFAULT_BATCH
    hw: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None = None
    precision: str = "auto"
    weak_fp16: bool = False
    tf32: bool = True
    workspace: int | None = None
    optimization_level: int = 3
    hardware_compatibility: str = "none"
    version_compatible: bool = False
    exclude_lean_runtime: bool = False
    timing_cache: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "batch", tuple(int(b) for b in self.batch))
        if self.hw is not None:
            object.__setattr__(self, "hw", tuple(tuple(int(v) for v in s) for s in self.hw))
        problems = []
        if len(self.batch) != 3 or not 1 <= self.batch[0] <= self.batch[1] <= self.batch[2]:
            problems.append(f"batch must be (min, opt, max) with 1 <= min <= opt <= max, got {self.batch}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.weak_fp16 and self.precision in ("fp32", "int8"):
            problems.append(f"weak_fp16 asks for FP16 layers but precision is {self.precision}")
        if not 0 <= self.optimization_level <= 5:
            problems.append(f"optimization_level must be 0..5, got {self.optimization_level}")
        if self.hardware_compatibility not in HARDWARE_LEVELS:
            problems.append(f"hardware_compatibility must be one of {HARDWARE_LEVELS}, got {self.hardware_compatibility!r}")
        if self.workspace is not None and self.workspace <= 0:
            problems.append(f"workspace must be a positive number of bytes, got {self.workspace}")
        if self.exclude_lean_runtime and not self.version_compatible:
            problems.append("exclude_lean_runtime only applies to a version-compatible build")
        if problems:
            raise FakeLocatorError("engine build options: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["batch"] = list(self.batch)
        d["hw"] = [list(s) for s in self.hw] if self.hw else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BuildOptions":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def key_fields(self) -> dict[str, Any]:
        """The options that change the plan (the timing cache only changes how long the build takes)."""
        d = self.to_dict()
        d.pop("timing_cache")
        return d

    def cli_args(self) -> list[str]:
        """The ``fakelocator export engine`` arguments that reproduce these options."""
        args = ["--batch-range", ",".join(str(b) for b in self.batch)]
        if self.hw:
            args += ["--hw", ",".join(f"{h}x{w}" for h, w in self.hw)]
        if self.precision in ("fp16", "int8"):
            args.append(f"--{self.precision}")
        elif self.precision == "fp32":
            args.append("--fp32")
        if self.weak_fp16:
            args.append("--weak-fp16")
        if not self.tf32:
            args.append("--no-tf32")
        if self.workspace is not None:
            args += ["--workspace", str(self.workspace)]
        if self.optimization_level != 3:
            args += ["--opt-level", str(self.optimization_level)]
        if self.hardware_compatibility != "none":
            args += ["--hardware-compatibility", self.hardware_compatibility]
        if self.version_compatible:
            args.append("--version-compatible")
        if self.exclude_lean_runtime:
            args.append("--exclude-lean-runtime")
        if self.timing_cache:
            args += ["--timing-cache", self.timing_cache]
        return args


# ---- the machine --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Environment:
    """The TensorRT and GPU an engine is built for or run on."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]

    def describe(self) -> str:
        return f"TensorRT {self.tensorrt_version} on {self.gpu_name} (sm_{self.compute_capability[0]}{self.compute_capability[1]})"


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:4])


# ---- the sidecar --------------------------------------------------------------------------------


def sidecar_path(engine_path: str | Path) -> Path:
    """``model.engine`` → ``model.engine.json``."""
    return Path(f"{engine_path}.json")


@dataclass(frozen=True)
class EngineSidecar:
    """What is known about a plan file; written next to it as ``<engine>.json``.

    The plan itself stays a pure TensorRT plan that ``trtexec`` and Triton load as is.
    """

    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    precision: str  # "fp32" | "fp16" | "int8" (explicit quantization: Q/DQ from the ONNX)
    strongly_typed: bool
    profiles: tuple[ShapeProfile, ...]
    onnx_path: str  # the ONNX the user gave
    onnx_sha256: str  # of the ONNX that was parsed (the converted one when converted)
    engine_sha256: str
    preprocessing: dict[str, Any]
    model_config: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    threshold: float = DEFAULT_THRESHOLD  # the ONNX's fakelocator.threshold (a sidecar without it: the default)
    fakelocator_version: str = ""
    options: BuildOptions = field(default_factory=BuildOptions)
    source_onnx_sha256: str = ""  # of the ONNX the user gave, when it was converted before parsing
    converted_onnx_path: str = ""
    onnx_opset: int = 0
    io: tuple[dict[str, Any], ...] = ()  # {"name", "mode", "dtype", "shape"} per I/O tensor
    created: str = ""
    schema: str = SCHEMA

    @property
    def environment(self) -> Environment:
        return Environment(self.tensorrt_version, self.gpu_name, tuple(self.compute_capability))

    @property
    def profile(self) -> ShapeProfile:
        return self.profiles[0]

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["compute_capability"] = list(self.compute_capability)
        d["profiles"] = [p.to_dict() for p in self.profiles]
        d["options"] = self.options.to_dict()
        d["io"] = [dict(t) for t in self.io]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "sidecar") -> "EngineSidecar":
        if d.get("schema") != SCHEMA:
            raise FakeLocatorError(f"{source}: schema {d.get('schema')!r} is not {SCHEMA!r}; rebuild the engine with this fakelocator")
        known = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - set(d))
        if missing:
            raise FakeLocatorError(f"{source}: missing {', '.join(missing)}")
        values = {k: v for k, v in d.items() if k in known}
        try:
            values["compute_capability"] = tuple(int(v) for v in d["compute_capability"])
            values["profiles"] = tuple(ShapeProfile.from_dict(p) for p in d["profiles"])
            values["options"] = BuildOptions.from_dict(d.get("options") or {})
            values["io"] = tuple(dict(t) for t in d.get("io", ()))
            values["threshold"] = float(d.get("threshold", DEFAULT_THRESHOLD))
        except (KeyError, TypeError, ValueError) as e:
            raise FakeLocatorError(f"{source}: malformed ({e})") from None
        if not values["profiles"]:
            raise FakeLocatorError(f"{source}: no optimization profile")
        if not 0.0 <= values["threshold"] <= 1.0:
            raise FakeLocatorError(f"{source}: threshold must be in [0, 1], got {values['threshold']}")
        return cls(**values)

    @classmethod
    def read(cls, path: str | Path) -> "EngineSidecar":
        path = Path(path)
        if not path.is_file():
            raise FakeLocatorError(f"engine sidecar {path}: no such file (every fakelocator engine has one; rebuild the engine)")
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise FakeLocatorError(f"engine sidecar {path}: not readable JSON ({e})") from None
        return cls.from_dict(d, source=f"engine sidecar {path}")

    def write(self, path: str | Path) -> Path:
        atomic_write_bytes(path, self.to_json().encode())
        return Path(path)

    def stamped(self) -> "EngineSidecar":
        return replace(self, created=datetime.now(timezone.utc).isoformat(timespec="seconds"))


# ---- compatibility ------------------------------------------------------------------------------


def mismatches(sidecar: EngineSidecar, here: Environment) -> list[str]:
    """Why an engine cannot run here; empty when it can."""
    problems = []
    built = sidecar.environment
    if sidecar.options.version_compatible:
        b, r = _version_tuple(built.tensorrt_version), _version_tuple(here.tensorrt_version)
        same_or_allowed = b[:1] == r[:1] or (b[0], r[0]) in CROSS_MAJOR_COMPATIBLE
        if r < b or not same_or_allowed:
            problems.append(
                f"TensorRT {here.tensorrt_version} cannot run a version-compatible engine built with "
                f"TensorRT {built.tensorrt_version} (needs the same or a later, compatible version)"
            )
    elif built.tensorrt_version != here.tensorrt_version:
        problems.append(f"built with TensorRT {built.tensorrt_version}, this machine has TensorRT {here.tensorrt_version}")
    level = sidecar.options.hardware_compatibility
    cc_built, cc_here = tuple(built.compute_capability), tuple(here.compute_capability)
    if level == "ampere_plus":
        if cc_here < (8, 0):
            problems.append(f"built for Ampere or later (sm_80+), this GPU is {here.gpu_name} (sm_{cc_here[0]}{cc_here[1]})")
    elif cc_built != cc_here:
        problems.append(
            f"built for {built.gpu_name} (sm_{cc_built[0]}{cc_built[1]}), this GPU is {here.gpu_name} (sm_{cc_here[0]}{cc_here[1]})"
        )
    elif level == "none" and built.gpu_name != here.gpu_name:
        problems.append(
            f"built on {built.gpu_name}, this GPU is {here.gpu_name} (same compute capability; build with "
            "--hardware-compatibility same_compute_capability to share engines between them)"
        )
    return problems


def rebuild_command(sidecar: EngineSidecar, engine_path: str | Path) -> str:
    return shlex.join(["fakelocator", "export", "engine", sidecar.onnx_path, "-o", str(engine_path), *sidecar.options.cli_args()])


def ensure_compatible(sidecar: EngineSidecar, here: Environment, engine_path: str | Path) -> None:
    """Raise, naming every mismatch and the rebuild command, when the engine cannot run here."""
    problems = mismatches(sidecar, here)
    if problems:
        raise FakeLocatorError(
            f"engine {engine_path} does not fit this machine: {'; '.join(problems)}. "
            f"Rebuild it here: {rebuild_command(sidecar, engine_path)}"
        )


def ensure_matches_plan(sidecar: EngineSidecar, engine_sha256: str, engine_path: str | Path) -> None:
    if sidecar.engine_sha256 != engine_sha256:
        raise FakeLocatorError(
            f"engine {engine_path} is not the plan its sidecar {sidecar_path(engine_path)} describes (sha256 differs); "
            f"rebuild it: {rebuild_command(sidecar, engine_path)}"
        )
