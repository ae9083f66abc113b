"""Torch-free batched inference: ``Locator`` (Python API) and the ``trt-locate`` command.

Importing this package does no work and imports neither torch, tensorrt nor CUDA libraries; the
names below load their modules on first use. See docs/runtime.md.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Locator": "fakelocator.runtime.locator",
    "default_model_path": "fakelocator.runtime.locator",
    "LocateResult": "fakelocator.runtime.results",
    "FrameResult": "fakelocator.runtime.results",
    "VideoSummary": "fakelocator.runtime.results",
    "RegionResult": "fakelocator.runtime.results",
    "Face": "fakelocator.runtime.results",
    "TopFrame": "fakelocator.runtime.results",
    "FaceOptions": "fakelocator.runtime.faces",
    "VideoResults": "fakelocator.runtime.video",
    "load_image": "fakelocator.runtime.decode",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
