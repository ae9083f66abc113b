"""The model files a benchmark runs: the ONNX (fp32 and fp16), a TensorRT engine, the checkpoint.

Each backend loads its own format: onnxruntime and tensorrt an ``.onnx`` (tensorrt builds and
caches an engine from it) or an ``.engine``, torch and the naive baseline a checkpoint
(``.safetensors``/``.pt``). Given one file, its companions are looked for beside it under the
same stem (``model.onnx`` ↔ ``model.safetensors``), which is how ``fakelocator export`` and the
embedded default model lay them out. An fp16 ONNX for the fp16 rows is converted from the fp32 one
into ``OUT/models/`` when none is given.

``untrained=BACKBONE`` builds ``ModelConfig(backbone=BACKBONE)`` with seeded random weights and
exports it: speed does not depend on the weights' values, so this times an architecture before
it is trained (e.g. the paper's ``deeplabv3_resnet101``). It needs the ``train`` extra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fakelocator.errors import FakeLocatorError
from fakelocator.model_io import CHECKPOINT_SUFFIXES, ONNX_SUFFIXES, model_format


@dataclass
class ModelFiles:
    onnx: Path | None = None  # the ONNX as given (fp32 unless its metadata says fp16)
    onnx_precision: str | None = None
    onnx_fp16: Path | None = None
    onnx_int8: Path | None = None  # the INT8 QDQ companion, model.int8.onnx (made by export onnx --int8)
    engine: Path | None = None
    checkpoint: Path | None = None
    config: dict = field(default_factory=dict)  # ModelConfig.to_dict() from the file's metadata
    weights: str = "as stored in the model files"
    notes: list[str] = field(default_factory=list)

    def onnx_for(self, precision: str) -> Path | None:
        if precision == "int8":
            return self.onnx_int8 if self.onnx_int8 is not None else (self.onnx if self.onnx_precision == "int8" else None)
        if precision == "fp16":
            return self.onnx_fp16 if self.onnx_fp16 is not None else (self.onnx if self.onnx_precision == "fp16" else None)
        return self.onnx if self.onnx_precision == "fp32" else None

    def to_dict(self) -> dict:
        return {
            "onnx": None if self.onnx is None else str(self.onnx),
            "onnx_precision": self.onnx_precision,
            "onnx_fp16": None if self.onnx_fp16 is None else str(self.onnx_fp16),
            "onnx_int8": None if self.onnx_int8 is None else str(self.onnx_int8),
            "engine": None if self.engine is None else str(self.engine),
            "checkpoint": None if self.checkpoint is None else str(self.checkpoint),
            "config": self.config,
            "weights": self.weights,
            "notes": self.notes,
        }


def onnx_metadata(path: Path) -> tuple[str, dict]:
    """(precision, model config dict) from an ONNX file's fakelocator metadata."""
    from fakelocator.runtime.onnx_info import read_onnx_info

    meta = read_onnx_info(path).require_fakelocator()
    return meta.precision, meta.config


def _checkpoint_config(path: Path) -> dict:
    from fakelocator.training.checkpoint import load_model

    net, _ = load_model(path)
    return net.config.to_dict()


def _sibling(path: Path, suffixes: tuple[str, ...]) -> Path | None:
    for suffix in suffixes:
        candidate = path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def build_untrained(backbone: str, out_dir: Path, *, seed: int = 0, progress: Callable[[str], None] = print) -> tuple[Path, Path | None]:
    """Write an untrained ``ModelConfig(backbone=...)`` as ``.safetensors`` and fp32 ``.onnx``; their paths.

    A failed ONNX export is reported and gives None: the torch backend and the baseline still run.
    """
    try:
        import torch
    except ImportError:
        raise FakeLocatorError("--untrained builds the network with PyTorch: pip install 'fakelocator[train]'") from None
    from fakelocator.export.onnx_export import export_onnx
    from fakelocator.training.checkpoint import save_weights
    from fakelocator.training.config import ModelConfig
    from fakelocator.training.model import build_model

    out_dir.mkdir(parents=True, exist_ok=True)
    weights, onnx_path = out_dir / f"untrained-{backbone}.safetensors", out_dir / f"untrained-{backbone}.onnx"
    torch.manual_seed(seed)
    net = build_model(ModelConfig(backbone=backbone)).eval()
    provenance = {"untrained": True, "seed": seed, "made_by": "fakelocator bench --untrained"}
    save_weights(weights, net, provenance)
    progress(f"exporting untrained {backbone} to {onnx_path} (checked against PyTorch)")
    try:
        export_onnx(net, onnx_path, provenance=provenance)
    except Exception as e:  # noqa: BLE001 - the checkpoint alone still benchmarks the torch backend
        progress(f"the ONNX export failed ({type(e).__name__}: {e}); going on with the checkpoint only")
        return weights, None
    return weights, onnx_path


def prepare(
    *,
    model: Path | None,
    checkpoint: Path | None,
    untrained: str | None,
    want_fp16_onnx: bool,
    out_dir: Path,
    seed: int = 0,
    progress: Callable[[str], None] = print,
) -> ModelFiles:
    """Resolve the model files to benchmark (see the module docstring)."""
    files = ModelFiles()
    if untrained is not None:
        if model is not None:
            raise FakeLocatorError("give either --model or --untrained, not both")
        files.checkpoint, exported = build_untrained(untrained, out_dir, seed=seed, progress=progress)
        model = exported or files.checkpoint
        files.weights = f"untrained (random initialization, seed {seed}); speed does not depend on the weights' values"
        if exported is None:
            files.notes.append("the ONNX export of the untrained network failed")
    elif model is None:
        from fakelocator.runtime.locator import default_model_path

        model = default_model_path()
        if not model.is_file():
            raise FakeLocatorError(
                f"the default model is not installed ({model} is missing); pass --model FILE, or "
                "--untrained unet_lite to time the default architecture with random weights"
            )
    model = Path(model)
    if not model.is_file():
        raise FakeLocatorError(f"model {model}: no such file")
    fmt = model_format(model)
    if fmt == "onnx":
        files.onnx = model
    elif fmt == "engine":
        files.engine = model
    elif files.checkpoint is None:
        files.checkpoint = model
    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise FakeLocatorError(f"checkpoint {checkpoint}: no such file")
        files.checkpoint = Path(checkpoint)
    if files.checkpoint is None and files.onnx is not None:
        files.checkpoint = _sibling(files.onnx, CHECKPOINT_SUFFIXES)
    if files.onnx is None and files.checkpoint is not None:
        files.onnx = _sibling(files.checkpoint, ONNX_SUFFIXES)

    if files.onnx is not None:
        files.onnx_precision, files.config = onnx_metadata(files.onnx)
        fp16_sibling = files.onnx.with_suffix(".fp16.onnx")
        if files.onnx_precision != "fp16" and fp16_sibling.is_file():
            files.onnx_fp16 = fp16_sibling
        int8_sibling = files.onnx.with_suffix(".int8.onnx")
        if files.onnx_precision == "fp32" and int8_sibling.is_file():
            files.onnx_int8 = int8_sibling
    elif files.checkpoint is not None:
        files.config = _checkpoint_config(files.checkpoint)
    elif files.engine is not None:
        from fakelocator.runtime.engine_sidecar import EngineSidecar, sidecar_path

        files.config = EngineSidecar.read(sidecar_path(files.engine)).model_config

    if want_fp16_onnx and files.onnx is not None and files.onnx_for("fp16") is None:
        target = out_dir / f"{files.onnx.stem}.fp16.onnx"
        try:
            from fakelocator.export.fp16 import convert_file_to_fp16

            progress(f"converting {files.onnx} to mixed precision: {target}")
            out_dir.mkdir(parents=True, exist_ok=True)
            files.onnx_fp16 = convert_file_to_fp16(files.onnx, target)
        except ImportError as e:
            files.notes.append(f"no fp16 ONNX: converting one needs onnx and onnxconverter-common ({e.name} missing)")
    return files
