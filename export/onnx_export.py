"""Export a FakeLocator network to one self-contained ONNX file, and check it as it is made.

The exported graph (the contract the runtime reads):

- input ``image``: float32 (N, 3, H, W), N dynamic (``batch``); H and W fixed at the preprocessing
  contract's size unless exported with ``dynamic_hw`` (then ``height`` and ``width``, ≥ 32);
- outputs ``map`` float32 (N, 1, H, W) in [0, 1], ``score`` float32 (N, 1), ``features`` float32 (N, C);
- metadata: see ``fakelocator.metadata``.

Exporter: torch's dynamo-based exporter (``torch.export`` + onnxscript), the default and the
maintained path since torch 2.9; the TorchScript-based one is deprecated. Both trace the same graph
for these networks (the dynamo one's is smaller: no ``Constant``/``Identity`` clutter), both need the
same dynamic-H/W change to the classifier (``torch_graph.py``); ``exporter="legacy"`` remains as an
escape hatch for a backbone the dynamo exporter cannot trace.

Opset 18 (``DEFAULT_OPSET``): the lowest the dynamo exporter emits (it raises 17 to 18), run by
every ONNX Runtime since 1.14 and parsed by TensorRT's ONNX parser from 10.0 on (which supports
opsets up to 20 or later); opset 18's ``Resize`` and ``Reduce*`` with axes-as-input are the forms
TensorRT 10 documents.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakelocator import __version__
from fakelocator.errors import FakeLocatorError
from fakelocator.metadata import ModelMetadata, write_metadata
from fakelocator.export.onnx_file import file_sha256, save_single_file
from fakelocator.model_io import INPUT_NAME, OUTPUT_NAMES
from fakelocator.export.parity import FP16, FP32, ParityReport

DEFAULT_OPSET = 18
MIN_OPSET = 17  # the legacy exporter's floor here; the dynamo exporter raises anything below 18 to 18
EXPORTERS = ("dynamo", "legacy")
MIN_DYNAMIC_SIZE = 32  # pixels: the deepest features are 1/16 of the input; torch.export specializes a size of 1


@dataclass(frozen=True)
class ExportResult:
    path: Path
    sha256: str
    size: int
    opset: int
    precision: str
    dynamic_hw: bool
    exporter: str
    seconds: float
    parity: ParityReport | None  # None when exported with check=False

    def summary(self) -> str:
        hw = "dynamic" if self.dynamic_hw else "static"
        return (
            f"wrote {self.path} ({self.size / 2**20:.1f} MiB, {self.precision}, opset {self.opset}, "
            f"batch dynamic, H/W {hw}, {self.exporter} exporter, {self.seconds:.1f} s)\n  sha256 {self.sha256}"
        )


def resolve_model(model_or_checkpoint) -> tuple[Any, dict[str, Any]]:
    """(FakeLocatorNet in eval mode, provenance) from a model object or a ``.safetensors``/``.pt`` file."""
    from fakelocator.training.checkpoint import load_model
    from fakelocator.training.model import FakeLocatorNet

    if isinstance(model_or_checkpoint, FakeLocatorNet):
        return model_or_checkpoint, {}
    if isinstance(model_or_checkpoint, (str, Path)):
        return load_model(model_or_checkpoint)
    raise FakeLocatorError(
        f"export needs a FakeLocatorNet or a checkpoint path, got {type(model_or_checkpoint).__name__}"
    )


def export_onnx(
    model_or_checkpoint,
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_hw: bool = False,
    fp16: bool = False,
    check: bool = True,
    provenance: dict[str, Any] | None = None,
    exporter: str = "dynamo",
) -> ExportResult:
    """Export a FakeLocator network to ``path`` as one ONNX file and check it.

    Args:
        model_or_checkpoint: a ``FakeLocatorNet`` or a ``.safetensors``/``.pt`` file written by training.
        path: the ``.onnx`` file to write (replaced atomically).
        opset: ONNX opset of the default domain; 18 is what the runtime and TensorRT ≥ 10 are tested with.
        dynamic_hw: make height and width dynamic too (batch always is).
        fp16: write a mixed-precision model (fp16 inside, fp32 inputs and outputs; ``fp16.py``).
        check: run ``onnx.checker`` (full check) and compare ONNX Runtime with PyTorch on random
            inputs, random images and photographs (``parity.py``); a failed check raises and
            removes the file.
        provenance: training provenance to store; by default the checkpoint's.
        exporter: "dynamo" (default) or "legacy" (TorchScript-based, deprecated by torch).
    """
    if exporter not in EXPORTERS:
        raise FakeLocatorError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    if opset < MIN_OPSET:
        raise FakeLocatorError(f"opset {opset} is too old; use {MIN_OPSET} or later (default {DEFAULT_OPSET})")
    path = Path(path)
    if path.suffix != ".onnx":
        raise FakeLocatorError(f"output {path}: the file name must end in .onnx")
    start = time.perf_counter()
    model, stored_provenance = resolve_model(model_or_checkpoint)
    config = model.config

    proto = _trace(model, opset=opset, dynamic_hw=dynamic_hw, exporter=exporter)
    metadata = ModelMetadata(
        preprocessing=config.preprocessing,
        config=config.to_dict(),
        provenance=stored_provenance if provenance is None else provenance,
        version=__version__,
    )
    write_metadata(proto, metadata)
    proto.doc_string = (
        f"FakeLocator {config.backbone}: image (N,3,H,W) normalized by the fakelocator.preprocessing "
        "contract -> map (N,1,H,W) fakeness in [0,1], score (N,1), features (N,C)"
    )
    if fp16:
        from fakelocator.export.fp16 import convert_model_to_fp16

        proto = convert_model_to_fp16(proto)
    save_single_file(proto, path)
    opset_written = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    del proto

    report = None
    if check:
        try:
            report = check_export(path, model, dynamic_hw=dynamic_hw, precision="fp16" if fp16 else "fp32")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if not report.passed:
            path.unlink(missing_ok=True)
            raise FakeLocatorError(
                f"export {path}: ONNX Runtime does not match PyTorch ({'; '.join(report.failures[:3])}); "
                "the file was removed (export with --no-check to keep it and inspect it with `fakelocator export check`)"
            )
    return ExportResult(
        path=path,
        sha256=file_sha256(path),
        size=path.stat().st_size,
        opset=int(opset_written),
        precision="fp16" if fp16 else "fp32",
        dynamic_hw=dynamic_hw,
        exporter=exporter,
        seconds=time.perf_counter() - start,
        parity=report,
    )


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def exporter_message(error: BaseException, limit: int = 400) -> str:
    """One plain line from a torch exporter's exception: the innermost cause (torch.onnx wraps the
    torch.export error that says what failed in a "step 1/3 … Next steps:" banner), without the
    terminal colour codes, its first lines joined and cut at ``limit`` characters."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = _ANSI.sub("", str(error)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = " ".join(lines[:3]) if lines else type(error).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _trace(model, *, opset: int, dynamic_hw: bool, exporter: str):
    """Run the torch exporter into a temporary folder and return the loaded ``onnx.ModelProto``."""
    import onnx
    import torch

    from fakelocator.export.torch_graph import ExportGraph

    graph = ExportGraph(model, dynamic_hw=dynamic_hw).eval()
    h, w = model.config.preprocessing.size
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(2, 3, h, w, generator=generator)  # batch 2: torch.export specializes sizes 0 and 1
    names = dict(input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), opset_version=opset)
    what = f"{model.config.backbone}{' with dynamic H/W' if dynamic_hw else ''}"
    with tempfile.TemporaryDirectory(prefix="fakelocator-export-") as tmp:
        out = Path(tmp) / "model.onnx"
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                if exporter == "dynamo":
                    dims = {0: torch.export.Dim("batch", min=1)}
                    if dynamic_hw:
                        dims[2] = torch.export.Dim("height", min=MIN_DYNAMIC_SIZE)
                        dims[3] = torch.export.Dim("width", min=MIN_DYNAMIC_SIZE)
                    torch.onnx.export(
                        graph, (example,), str(out), dynamo=True, external_data=False,
                        dynamic_shapes={INPUT_NAME: dims}, verbose=False, **names,
                    )
                else:
                    spatial = {2: "height", 3: "width"} if dynamic_hw else {}
                    axes = {INPUT_NAME: {0: "batch", **spatial}, "map": {0: "batch", **spatial},
                            "score": {0: "batch"}, "features": {0: "batch"}}
                    torch.onnx.export(graph, (example,), str(out), dynamo=False, dynamic_axes=axes, **names)
        except Exception as e:  # noqa: BLE001 - the exporters raise many types; the message is what helps
            other = "legacy" if exporter == "dynamo" else "dynamo"
            raise FakeLocatorError(f"the {exporter} exporter cannot export {what}: {exporter_message(e)} "
                                   f"(try --exporter {other})") from e
        return onnx.load(str(out))  # weights inlined even if the exporter wrote them beside the file


def check_export(path: str | Path, model, *, dynamic_hw: bool, precision: str, seed: int = 0) -> ParityReport:
    """``onnx.checker`` (full check) and ONNX Runtime vs PyTorch parity for a fresh export."""
    import onnx

    from fakelocator.export.parity import compare, onnxruntime_runner, standard_cases, torch_runner

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:  # noqa: BLE001 - ValidationError, InferenceError
        raise FakeLocatorError(f"export {path}: onnx.checker rejects it: {str(e).strip().splitlines()[0]}") from e
    contract = model.config.preprocessing
    h, w = contract.size
    extra = [(h + 16, w + 48), (max(MIN_DYNAMIC_SIZE, h // 2 + 5), w + 13)] if dynamic_hw else []
    cases = standard_cases(contract, seed=seed, extra_sizes=extra)
    bounds = FP16 if precision == "fp16" else FP32
    return compare(torch_runner(model), onnxruntime_runner(path), cases, bounds)
