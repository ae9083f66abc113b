"""The model's I/O contract: tensor names, shapes and model-file suffixes, written once.

Every exported network (ONNX, TensorRT engine, Triton model) has exactly this interface; the export
writes it, the runtime backends, parity checks, benchmarks and Triton configs read it from here.

- input ``image``: (N, 3, H, W), float32 (float16 only inside an fp16 graph), normalized as the
  preprocessing contract (``fakelocator.contract``) says; H × W is the contract's size unless the
  model was exported with dynamic height/width;
- output ``map``: (N, 1, h, w) fakeness in [0, 1] at model resolution (h × w = H × W);
- output ``score``: (N, 1) real/fake score in [0, 1];
- output ``features``: (N, C) pooled encoder features (optional; single-sample clustering).
"""

from __future__ import annotations

from pathlib import Path

from fakelocator.errors import FakeLocatorError

INPUT_NAME = "image"
OUTPUT_NAMES = ("map", "score", "features")
#: The outputs every model must have; ``features`` is optional.
REQUIRED_OUTPUTS = ("map", "score")

#: Dimensions per tensor, by axis name: N batch, H/W the input size, h/w the map's (equal to H/W), C feature width.
SHAPES = {
    "image": ("N", 3, "H", "W"),
    "map": ("N", 1, "h", "w"),
    "score": ("N", 1),
    "features": ("N", "C"),
}

ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth")

#: Model file suffix → format: "onnx", "engine" (a TensorRT plan with its ``.json`` sidecar) or "checkpoint".
SUFFIX_FORMATS = {
    **{s: "onnx" for s in ONNX_SUFFIXES},
    **{s: "engine" for s in ENGINE_SUFFIXES},
    **{s: "checkpoint" for s in CHECKPOINT_SUFFIXES},
}


def model_format(path: str | Path) -> str:
    """"onnx", "engine" or "checkpoint", from the file's suffix (any case)."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise FakeLocatorError(
            f"model {path}: unknown model file type {suffix or '(no suffix)'!r}; expected "
            + ", ".join(sorted(SUFFIX_FORMATS))
        )
    return SUFFIX_FORMATS[suffix]


def check_io_names(inputs, outputs, what: str) -> None:
    """Raise naming ``what`` unless the model has input ``image`` and outputs ``map`` and ``score``."""
    inputs, outputs = list(inputs), list(outputs)
    missing = [n for n in REQUIRED_OUTPUTS if n not in outputs]
    if INPUT_NAME not in inputs or missing:
        raise FakeLocatorError(
            f"{what}: expected input {INPUT_NAME!r} and outputs {', '.join(REQUIRED_OUTPUTS)}; "
            f"it has inputs {inputs}, outputs {outputs}"
        )
