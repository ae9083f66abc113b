"""What building a TensorRT engine decides without TensorRT: pure, and tested on any machine.

- the command line's ``--batch-range 1,16,64``, ``--hw`` and ``--workspace`` values;
- the precision decision (strongly typed vs the explicit weak-typing FP16 flag);
- ONNX parser errors formatted with node index, name and operator.

What the runtime needs to load an engine lives in the runtime and is imported from there: the
profile, the build options and the sidecar with its compatibility checks
(``fakelocator.runtime.engine_sidecar``) and the engine cache (``fakelocator.runtime.engine_cache``).
``tensorrt_build.py`` makes the TensorRT calls; ``fakelocator.runtime.backends.tensorrt`` runs engines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.engine_sidecar import DEFAULT_BATCH, BuildOptions

__all__ = [
    "NATIVE_BATCH", "ParserError", "PrecisionPlan", "default_batch", "format_parser_errors", "parse_batch", "parse_hw",
    "parse_size", "plan_precision",
]

#: The batch profile of a model made for ``native`` analysis: its inputs are tiles, tens per image
#: (a 1080p frame is 45 tiles of 256² with the default overlap), so batches run larger.
NATIVE_BATCH = (1, 32, 64)


def default_batch(native: bool) -> tuple[int, int, int]:
    """The (min, opt, max) batch profile when none is asked for: ``NATIVE_BATCH`` for a native model."""
    return NATIVE_BATCH if native else DEFAULT_BATCH


# ---- command-line values ------------------------------------------------------------------------


def parse_batch(text: str) -> tuple[int, int, int]:
    """``"1,16,64"`` → (min, opt, max); ``"16"`` → (1, 16, 16): any batch up to 16, tuned for 16."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise FakeLocatorError(f"--batch-range {text!r}: expected MAX or MIN,OPT,MAX integers, e.g. 1,16,64") from None
    if len(values) == 1:
        values = [1, values[0], values[0]]
    if len(values) != 3 or not 1 <= values[0] <= values[1] <= values[2]:
        raise FakeLocatorError(f"--batch-range {text!r}: need 1 <= MIN <= OPT <= MAX, e.g. 1,16,64")
    return values[0], values[1], values[2]


def parse_hw(text: str) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """``"160x160,224x224,512x512"`` → (min, opt, max) (height, width); one size → min = opt = max."""
    sizes = []
    for part in str(text).split(","):
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", part)
        if not m:
            raise FakeLocatorError(f"--hw {text!r}: expected HxW or MINHxMINW,OPTHxOPTW,MAXHxMAXW, e.g. 224x224")
        sizes.append((int(m.group(1)), int(m.group(2))))
    if len(sizes) == 1:
        sizes = sizes * 3
    if len(sizes) != 3:
        raise FakeLocatorError(f"--hw {text!r}: give one size or three (min, opt, max)")
    lo, opt, hi = sizes
    if not all(1 <= lo[i] <= opt[i] <= hi[i] for i in (0, 1)):
        raise FakeLocatorError(f"--hw {text!r}: need min <= opt <= max in both height and width")
    return lo, opt, hi


def parse_size(text: str) -> int:
    """``"4GiB"``, ``"512MiB"``, ``"2G"``, ``"1073741824"`` → bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)\s*", str(text), flags=re.IGNORECASE)
    if not m:
        raise FakeLocatorError(f"size {text!r}: expected a number of bytes with an optional unit, e.g. 4GiB")
    power = " KMGT".index(m.group(2).upper() or " ")
    return int(float(m.group(1)) * 1024**power)


# ---- build options and precision ----------------------------------------------------------------


@dataclass(frozen=True)
class PrecisionPlan:
    """What the builder does about precision, and what to tell the user."""

    convert_to_fp16: bool  # convert the fp32 ONNX to mixed precision first
    strongly_typed: bool  # NetworkDefinitionCreationFlag.STRONGLY_TYPED
    fp16_flag: bool  # BuilderFlag.FP16 (weak typing)
    engine_precision: str  # "fp32" | "fp16" | "int8"
    notes: tuple[str, ...] = ()


INT8_EXPORT = "fakelocator export onnx MODEL --int8 --int8-target tensorrt"


def plan_precision(onnx_precision: str, options: BuildOptions, *, tensorrt_version: str, has_fp16_flag: bool,
                   int8_target: str | None = None) -> PrecisionPlan:
    """Decide how the engine gets its precision. TensorRT ≥ 10.12 (and 11 only) types tensors from the ONNX.

    An INT8 engine comes from an INT8 QDQ ONNX (explicit quantization: TensorRT runs the layers
    between Q/DQ pairs in int8 with the ONNX's scales; no calibrator, no INT8 builder flag, which
    10.12 deprecated and 11 removed). TensorRT's quantization is symmetric, signed int8 with zero
    point 0, so ``int8_target`` (the ONNX's ``fakelocator.quantization`` target) must be "tensorrt":
    the CPU target's uint8 activations do not parse.
    """
    if onnx_precision not in ("fp32", "fp16", "int8"):
        raise FakeLocatorError(f"ONNX precision must be fp32, fp16 or int8, got {onnx_precision!r}")
    if onnx_precision == "int8":
        if options.precision in ("fp32", "fp16") or options.weak_fp16:
            raise FakeLocatorError(f"the ONNX is INT8 QDQ (fakelocator.precision = int8); an {options.precision if not options.weak_fp16 else 'fp16'} "
                                   "engine needs the fp32 export")
        if int8_target != "tensorrt":
            raise FakeLocatorError(
                f"this INT8 ONNX was quantized for the {int8_target or 'unknown'} target (uint8 activations with zero "
                f"points); TensorRT builds symmetric int8 QDQ only: make one with `{INT8_EXPORT}`"
            )
        return PrecisionPlan(False, True, False, "int8", (
            "precision follows the ONNX: INT8 QDQ, explicit quantization (strongly typed network; the layers "
            "between Q/DQ pairs run in int8, the rest in fp32)",))
    if options.precision == "int8":
        raise FakeLocatorError(f"an INT8 engine is built from an INT8 QDQ ONNX (this one is {onnx_precision}): `{INT8_EXPORT}`, "
                               "then export engine on that file")
    if onnx_precision == "fp16":
        if options.precision == "fp32":
            raise FakeLocatorError(
                "the ONNX is mixed precision (fakelocator.precision = fp16); an fp32 engine needs the fp32 export"
            )
        if options.weak_fp16:
            raise FakeLocatorError("--weak-fp16 applies to an fp32 ONNX; this one is already fp16 (build it without the flag)")
        return PrecisionPlan(False, True, False, "fp16", ("precision follows the ONNX: fp16 (strongly typed network)",))
    if options.weak_fp16:
        if not has_fp16_flag:
            raise FakeLocatorError(
                f"TensorRT {tensorrt_version} has no FP16 builder flag (weak typing was removed in TensorRT 11); "
                "build an FP16 engine from a mixed-precision ONNX instead: --fp16 without --weak-fp16"
            )
        return PrecisionPlan(
            False, False, True, "fp16",
            ("weakly typed network with the FP16 builder flag, as asked (deprecated since TensorRT 10.12; "
             "TensorRT chooses fp16 or fp32 per layer)",),
        )
    if options.precision == "fp16":
        return PrecisionPlan(
            True, True, False, "fp16",
            ("the ONNX is fp32 and a strongly typed network keeps its types, so it is first converted to mixed "
             "precision (fp16 inside, fp32 inputs/outputs, Resize in fp32)",),
        )
    tf32 = " with TF32 math" if options.tf32 else ""
    return PrecisionPlan(False, True, False, "fp32", (f"precision follows the ONNX: fp32{tf32} (strongly typed network)",))


# ---- parser errors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParserError:
    """One ONNX parser error, as TensorRT's ``IParserError`` reports it."""

    code: str
    desc: str
    node: int = -1
    node_name: str = ""
    node_operator: str = ""
    func: str = ""

    def format(self) -> str:
        where = f"node {self.node}" if self.node >= 0 else "graph"
        if self.node_name:
            where += f" {self.node_name!r}"
        if self.node_operator:
            where += f" ({self.node_operator})"
        return f"{where}: {self.code}: {self.desc}"


def format_parser_errors(onnx_path: str | Path, errors: list[ParserError]) -> str:
    """Every parser error, one per line, each with its node."""
    head = f"TensorRT cannot parse {onnx_path}: {len(errors)} error{'s' if len(errors) != 1 else ''}"
    return "\n".join([head] + [f"  {e.format()}" for e in errors])
