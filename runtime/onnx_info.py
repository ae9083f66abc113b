"""What an ONNX file is, read without running it: its hash, inputs, outputs, opset and metadata.

Torch-free: the engine cache of the TensorRT backend and the engine builder use it on machines
without torch. ``onnx`` is imported inside the functions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fakelocator.errors import FakeLocatorError
from fakelocator.metadata import PREPROCESSING_KEY, ModelMetadata, props_of
from fakelocator.model_io import INPUT_NAME, REQUIRED_OUTPUTS

Dim = int | str | None  # a fixed size, a named dynamic axis, or unknown


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: "float32", "float16", ...
    shape: tuple[Dim, ...]

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype} ({dims})"


@dataclass(frozen=True)
class OnnxInfo:
    """What the tools need to know about an ONNX file without running it."""

    path: Path
    sha256: str
    size: int
    opset: int
    producer: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    props: dict[str, str]
    metadata: ModelMetadata | None  # None for an ONNX file that fakelocator did not export

    def input(self, name: str = INPUT_NAME) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise FakeLocatorError(f"model {self.path}: no input named {name!r} (inputs: {[s.name for s in self.inputs]})")

    @property
    def precision(self) -> str:
        return self.metadata.precision if self.metadata else "fp32"

    @property
    def dynamic_hw(self) -> bool:
        return any(not isinstance(d, int) for d in self.input().shape[2:])

    def require_fakelocator(self) -> ModelMetadata:
        """The metadata, checked to describe a FakeLocator network (input ``image``, outputs ``map``, ``score``)."""
        if self.metadata is None:
            raise FakeLocatorError(
                f"model {self.path}: no {PREPROCESSING_KEY} in its metadata; export it with `fakelocator export onnx`"
            )
        names = [s.name for s in self.outputs]
        missing = [n for n in REQUIRED_OUTPUTS if n not in names]
        spec = self.input()
        if missing or len(spec.shape) != 4 or spec.shape[1] != 3:
            raise FakeLocatorError(
                f"model {self.path}: expected input image (N, 3, H, W) and outputs map, score; "
                f"it has {spec.describe()} and outputs {names}"
            )
        return self.metadata


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _spec(value) -> TensorSpec:
    import onnx

    t = value.type.tensor_type
    dims = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "undefined"
    return TensorSpec(value.name, dtype, tuple(dims))


def read_onnx_info(path: str | Path) -> OnnxInfo:
    """Inputs, outputs, opset, metadata and sha256 of an ONNX file."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FakeLocatorError(f"model {path}: no such file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - onnx raises DecodeError and others for a bad file
        raise FakeLocatorError(f"model {path}: not a readable ONNX file ({e})") from None
    props = props_of(model)
    metadata = ModelMetadata.from_props(props, source=f"model {path}") if PREPROCESSING_KEY in props else None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    initializers = {i.name for i in model.graph.initializer}
    return OnnxInfo(
        path=path,
        sha256=file_sha256(path),
        size=path.stat().st_size,
        opset=int(opset),
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        inputs=tuple(_spec(v) for v in model.graph.input if v.name not in initializers),
        outputs=tuple(_spec(v) for v in model.graph.output),
        props=props,
        metadata=metadata,
    )
