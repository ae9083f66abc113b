"""INT8 ONNX: static QDQ quantization of an fp32 export, calibrated, with an accuracy gate.

``export_int8(fp32.onnx, out.int8.onnx)`` makes one self-contained ONNX file whose convolutions
(and the other ops ONNX Runtime's quantizer handles: Gemm, Add, Mul, Concat, Resize, pooling…) read
and write 8-bit tensors through ``QuantizeLinear``/``DequantizeLinear`` pairs (the QDQ format):

- weights: int8, symmetric, **per output channel**;
- activations: one scale (and zero point) per tensor, from calibration inputs that look like the
  runtime's (``calibration.py``), with the type the target runs fast:
  ``cpu``: **uint8, asymmetric (U8S8)**, ONNX Runtime's fast path on x86 (with VNNI: measured
  1.45 × the fp32 speed where int8 activations, S8S8, were slower than fp32; docs/export.md);
  ``tensorrt``: **int8, symmetric** (zero point 0): the only integer QDQ TensorRT builds
  (explicit quantization); ONNX Runtime runs that file too, more slowly.
- inputs and outputs stay float32: the runtime feeds and reads the same arrays as for fp32.

Then the gate (``int8_gate.py``) runs both files over a held-out set; the file is written only when
the int8 model stays within the bounds, or with ``force`` (and a loud warning, and the failure in
its metadata). The metadata is the fp32 source's with ``fakelocator.precision = int8`` plus
``fakelocator.quantization`` (JSON): format, target, types, calibration (method, tile count, seed,
sources), the ops left in float, the source file's sha256, and the gate's figures.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.metadata import QUANTIZATION_KEY, ModelMetadata, props_of, read_quantization, write_metadata
from fakelocator.model_io import INPUT_NAME
from fakelocator.export.calibration import CalibrationConfig, CalibrationSet, calibration_set
from fakelocator.export.int8_gate import GateBounds, GateItem, GateReport, GateSetConfig, heldout_set, run_gate
from fakelocator.export.onnx_file import file_sha256, read_onnx_info, save_single_file

TARGETS = ("cpu", "tensorrt")
#: target → (activation type, symmetric activations)
ACTIVATIONS = {"cpu": ("uint8", False), "tensorrt": ("int8", True)}
CALIBRATION_BATCH = 8


@dataclass(frozen=True)
class QuantizeOptions:
    """How the graph is quantized.

    Args:
        target: "cpu" (uint8 asymmetric activations, U8S8) or "tensorrt" (int8 symmetric, S8S8).
        float_ops: op types left in float (e.g. ("Resize", "Sigmoid")); empty: everything the
            quantizer handles is quantized (measured on the default model: docs/export.md).
        reduce_range: 7-bit weights, ONNX Runtime's advice for U8S8 on x86 CPUs *without* VNNI,
            whose multiply-add instruction can saturate.
    """

    target: str = "cpu"
    float_ops: tuple[str, ...] = ()
    reduce_range: bool = False

    def __post_init__(self):
        if self.target not in TARGETS:
            raise FakeLocatorError(f"int8 target must be one of {TARGETS}, got {self.target!r}")

    def describe(self) -> dict:
        activation, symmetric = ACTIVATIONS[self.target]
        return {
            "format": "QDQ", "target": self.target,
            "activations": f"{activation} per tensor, {'symmetric' if symmetric else 'asymmetric'}",
            "weights": f"int8 per channel, symmetric{', reduced range (7 bits)' if self.reduce_range else ''}",
            "float_ops": list(self.float_ops),
        }


@dataclass
class Int8Result:
    path: Path
    sha256: str
    size: int
    seconds: float
    calibration: dict
    gate: GateReport | None
    forced: bool = False
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        gate = "gate skipped" if self.gate is None else ("gate passed" if self.gate.passed else "GATE FAILED, written with --force")
        c = self.calibration
        return (f"wrote {self.path} ({self.size / 2**20:.1f} MiB, int8 QDQ, {gate}, calibrated by {c['method']} on "
                f"{c['tiles']} {'tiles' if c['analysis'] == 'native' else 'images'}, {self.seconds:.0f} s)\n  sha256 {self.sha256}")


class _Reader:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over an (N, 3, h, w) array, in batches."""

    def __init__(self, inputs: np.ndarray, batch: int = CALIBRATION_BATCH):
        self._batches = iter([inputs[i:i + batch] for i in range(0, len(inputs), batch)])

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def quantize_file(src: str | Path, dst: str | Path, calibration: CalibrationSet, options: QuantizeOptions = QuantizeOptions()) -> None:
    """Write the QDQ model of the fp32 ONNX ``src`` to ``dst`` (no metadata changes, no gate)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    import onnx

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    activation, symmetric = ACTIVATIONS[options.target]
    model = onnx.load(str(src))
    ops = sorted({n.op_type for n in model.graph.node} - set(options.float_ops))
    del model
    extra = {"ActivationSymmetric": symmetric, "WeightSymmetric": True}
    # the quantizer logs advice ("consider pre-processing") on the root logger and warns on torch-style
    # graphs; neither is actionable for a user of this command
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(
                str(src), str(dst), _Reader(calibration.inputs),
                quant_format=QuantFormat.QDQ, op_types_to_quantize=ops, per_channel=True,
                reduce_range=options.reduce_range,
                activation_type=QuantType.QUInt8 if activation == "uint8" else QuantType.QInt8,
                weight_type=QuantType.QInt8, calibrate_method=methods[calibration.config.method],
                extra_options=extra,
            )
    finally:
        root.setLevel(level)


def quantized_convs(model) -> tuple[int, list[str]]:
    """(number of Conv nodes, names of those whose input or weight is not read through DequantizeLinear)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    bare = [n.name or f"Conv#{i}" for i, n in enumerate(convs)
            if any(getattr(producers.get(x), "op_type", None) != "DequantizeLinear" for x in n.input[:2])]
    return len(convs), bare


def held_out_families(metadata: ModelMetadata) -> tuple[str, ...]:
    """The synthesis families the model never trained on (its provenance), held out of calibration."""
    stream = metadata.provenance.get("stream") or {}
    return tuple(str(f) for f in stream.get("exclude") or ())


def export_int8(
    source: str | Path,
    output: str | Path,
    *,
    calibration: CalibrationConfig = CalibrationConfig(),
    options: QuantizeOptions = QuantizeOptions(),
    gate: bool = True,
    gate_set: GateSetConfig | None = None,
    gate_items: tuple[list[GateItem], str] | None = None,
    bounds: GateBounds = GateBounds(),
    force: bool = False,
    progress: Callable[[str], None] = lambda message: None,
) -> Int8Result:
    """Quantize the fp32 ONNX ``source`` to ``output`` and gate it (module docstring).

    Args:
        calibration: the calibration inputs (``calibration.CalibrationConfig``).
        options: target and ops left in float.
        gate: measure against fp32 on a held-out set (False writes without measuring: no figures).
        gate_set: the generated held-out set; default: the families the model never trained on.
        gate_items: ``(items, description)``: a held-out set of your own instead (tests, other domains).
        bounds: the gate's bounds.
        force: write the file even when the gate fails (its metadata says so).
    Raises:
        FakeLocatorError: a bad source, or a failed gate without ``force`` (nothing is written).
    """
    import onnx

    start = time.perf_counter()
    source, output = Path(source), Path(output)
    if output.suffix != ".onnx":
        raise FakeLocatorError(f"output {output}: the file name must end in .onnx")
    info = read_onnx_info(source)
    metadata = info.require_fakelocator()
    if metadata.precision != "fp32":
        raise FakeLocatorError(f"{source} is {metadata.precision}: quantize the fp32 export (fakelocator.precision = fp32)")
    held_out = held_out_families(metadata)

    progress(f"calibration: {calibration.tiles} inputs ({calibration.method}, seed {calibration.seed}) "
             + (f"from {calibration.folder}" if calibration.folder else "from the bundled photos and the synthesis stream"))
    calib = calibration_set(metadata.preprocessing, calibration, exclude_families=held_out)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.stem}-", suffix=".onnx", dir=output.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        progress(f"quantizing {source} (QDQ, {options.describe()['activations']} activations)")
        quantize_file(source, tmp, calib, options)
        model = onnx.load(str(tmp))
        n_conv, bare = quantized_convs(model)
        if bare and "Conv" not in options.float_ops:
            raise FakeLocatorError(f"quantization left {len(bare)} of {n_conv} convolutions without QDQ: {', '.join(bare[:5])}")
        record = {**options.describe(), "calibration": calib.describe(), "convolutions": n_conv,
                  "source": {"file": source.name, "sha256": info.sha256}, "tool": _tool()}
        _write(model, tmp, metadata, record)
        del model
        report = None
        if gate:
            items, description = gate_items if gate_items is not None else heldout_set(
                gate_set or GateSetConfig(families=held_out))
            progress(f"accuracy gate: fp32 and int8 on {description}, {len(items)} images")
            report = run_gate(source, tmp, items, description=description, bounds=bounds, threshold=metadata.threshold)
            progress(report.format())
            if not report.passed and not force:
                raise FakeLocatorError(
                    f"{output}: the int8 model loses more than the gate allows ({'; '.join(report.failures)}); nothing "
                    "was written. Calibrate on images like yours (--calibration DIR, more --calibration-tiles, another "
                    "--calibration-method), keep ops in float (--int8-float-ops Resize,Sigmoid), or write it anyway with --force")
            record["gate"] = {**report.to_dict(), "forced": not report.passed}
            model = onnx.load(str(tmp))
            _write(model, tmp, metadata, record)
            del model
        onnx.checker.check_model(str(tmp), full_check=True)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    forced = report is not None and not report.passed
    return Int8Result(output, file_sha256(output), output.stat().st_size, time.perf_counter() - start, calib.describe(),
                      report, forced=forced)


def _write(model, path: Path, metadata: ModelMetadata, record: dict) -> None:
    props = props_of(model)
    for key in [k for k in props if k.startswith("fakelocator.")]:
        props.pop(key)
    del model.metadata_props[:]
    for key, value in props.items():  # the quantizer's own keys, if any
        model.metadata_props.add(key=key, value=value)
    write_metadata(model, metadata.with_precision("int8"))
    model.metadata_props.add(key=QUANTIZATION_KEY, value=json.dumps(record, sort_keys=True))
    note = f"INT8 QDQ ({record['target']} target)."
    if note not in model.doc_string:
        model.doc_string = f"{model.doc_string} {note}".strip()
    save_single_file(model, path)


def _tool() -> str:
    import onnxruntime

    return f"onnxruntime.quantization {onnxruntime.__version__} (quantize_static)"
