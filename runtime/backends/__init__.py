"""Inference backends, imported lazily by name, and the choice among them.

Each backend is a module ``fakelocator.runtime.backends.<name>`` providing

- ``available() -> (bool, reason)``: whether its libraries import (reason says why not and how to fix);
- ``load(model, *, device, batch_size, **options) -> Backend``;
- optionally ``FORMATS``: the model formats it loads ("onnx", "engine", "checkpoint"); without it,
  ``DEFAULT_FORMATS`` applies.

``device`` is "auto", "cpu" or "cuda[:N]"; each backend resolves "auto" itself ("cuda:0" when it
can use a GPU, else "cpu").

``backend="auto"`` takes, among the backends that load the model's format and are available, the
first in ``PREFERENCE`` (fastest first): tensorrt (engine files; ONNX too if the tensorrt module
lists it), onnxruntime (its CUDA provider when present, else CPU), torch (checkpoints).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from fakelocator.errors import FakeLocatorError
from fakelocator.model_io import SUFFIX_FORMATS, model_format
from fakelocator.runtime.backends.base import Backend, ModelInfo

PREFERENCE = ("tensorrt", "onnxruntime", "torch")
DEFAULT_FORMATS = {"tensorrt": ("engine",), "onnxruntime": ("onnx",), "torch": ("checkpoint",)}

__all__ = ["Backend", "ModelInfo", "PREFERENCE", "SUFFIX_FORMATS", "available", "formats", "load_backend", "model_format", "module", "select_backend"]


def module(name: str) -> ModuleType:
    if name not in PREFERENCE:
        raise FakeLocatorError(f"unknown backend {name!r}; choose auto, {', '.join(PREFERENCE)}")
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"{__name__}.{name}":
            raise FakeLocatorError(f"the {name} backend is not part of this fakelocator build") from None
        raise


def available(name: str) -> tuple[bool, str]:
    try:
        mod = module(name)
    except FakeLocatorError as e:
        return False, str(e)
    return mod.available()


def formats(name: str) -> tuple[str, ...]:
    try:
        return tuple(getattr(module(name), "FORMATS", DEFAULT_FORMATS[name]))
    except FakeLocatorError:
        return DEFAULT_FORMATS[name]


def _advice(fmt: str, path: str) -> str:
    if fmt == "checkpoint":
        return (
            "a checkpoint runs on the torch backend (pip install 'fakelocator[train]'); "
            f"or export it once, torch-free afterwards: fakelocator export onnx {path}"
        )
    if fmt == "engine":
        return (
            "an engine runs only on the tensorrt backend, with an NVIDIA GPU and the tensorrt package "
            "(see docs/export.md); the .onnx it was built from runs anywhere with onnxruntime"
        )
    return "pip install 'fakelocator[runtime]'"


def select_backend(model: str | Path, backend: str = "auto", device: str = "auto") -> str:
    """The backend name that will load ``model``; FakeLocatorError saying why when none can."""
    fmt = model_format(model)
    if backend != "auto":
        if fmt not in formats(backend):
            raise FakeLocatorError(
                f"model {model}: the {backend} backend does not load {fmt} files; " + _advice(fmt, str(model))
            )
        ok, reason = available(backend)
        if not ok:
            raise FakeLocatorError(f"backend {backend} is not available: {reason}")
        return backend
    reasons = []
    for name in PREFERENCE:
        if fmt not in formats(name):
            continue
        if name == "tensorrt" and device == "cpu":
            reasons.append("tensorrt: needs a GPU, device is cpu")
            continue
        ok, reason = available(name)
        if ok:
            return name
        reasons.append(f"{name}: {reason}")
    raise FakeLocatorError(
        f"model {model}: no available backend loads {fmt} files ({'; '.join(reasons)}); " + _advice(fmt, str(model))
    )


def load_backend(
    model: str | Path, backend: str = "auto", *, device: str = "auto", batch_size: int = 8, **options
) -> Backend:
    """Load ``model`` on the chosen (or best available) backend."""
    model = str(model)
    if not Path(model).is_file():
        raise FakeLocatorError(f"model {model}: no such file")
    name = select_backend(model, backend, device)
    if name == "tensorrt" and device == "auto":
        device = "cuda:0"
    return module(name).load(model, device=device, batch_size=batch_size, **options)
