"""The engine cache: one TensorRT engine per machine for an ONNX file, built on first use.

The key is GPU + compute capability + TensorRT version + ONNX sha256 + profile + build options
(``cache_key``), so a new GPU, a TensorRT upgrade or a new export builds a new engine and nothing
stale is ever loaded. Entries are an engine and its sidecar (``engine_sidecar.py``), written
atomically; two processes racing build twice, harmlessly.

Building is not the runtime's: on a miss, ``cached_engine`` calls the ``build`` it is given, by
default ``fakelocator.export.tensorrt_build.build_engine``, looked up only then. Everything else
(the key, the lookup, the checks of an entry) needs neither the export package nor TensorRT.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from fakelocator.errors import FakeLocatorError
from fakelocator.model_io import INPUT_NAME
from fakelocator.runtime.engine_sidecar import (
    SCHEMA,
    BuildOptions,
    EngineSidecar,
    Environment,
    ShapeProfile,
    make_profile,
    mismatches,
    sidecar_path,
)
from fakelocator.runtime.onnx_info import file_sha256, read_onnx_info

CACHE_ENV = "FAKELOCATOR_CACHE"

#: ``build(onnx_path, engine_path, options, *, device, log)``: writes the engine and its sidecar.
EngineBuilder = Callable[..., object]


def cache_root(environ: dict[str, str] | None = None) -> Path:
    """``$FAKELOCATOR_CACHE/engines``, else ``$XDG_CACHE_HOME/fakelocator/engines``, else ``~/.cache/fakelocator/engines``."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser() / "engines"
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "fakelocator" / "engines"


def cache_key(here: Environment, onnx_sha256: str, profile: ShapeProfile, options: BuildOptions) -> str:
    """Same key ⇔ same GPU, TensorRT, ONNX bytes, profile and plan-changing options."""
    material = {
        "gpu": here.gpu_name,
        "compute_capability": list(here.compute_capability),
        "tensorrt": here.tensorrt_version,
        "onnx_sha256": onnx_sha256,
        "profile": profile.to_dict(),
        "options": options.key_fields(),
        "schema": SCHEMA,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:24]


def cached_engine_path(root: str | Path, onnx_path: str | Path, key: str) -> Path:
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(onnx_path).stem)[:40]
    return Path(root) / f"{stem}-{key}.engine"


def default_builder() -> EngineBuilder:
    """``fakelocator.export.tensorrt_build.build_engine``: the export part builds engines, on a cache miss only."""
    try:
        return importlib.import_module("fakelocator.export.tensorrt_build").build_engine
    except ImportError as e:
        raise FakeLocatorError(
            f"building a TensorRT engine from an ONNX needs fakelocator's export part ({e}); "
            "build it once with `fakelocator export engine` and load the .engine"
        ) from None


def cached_engine(
    onnx_path: str | Path,
    options: BuildOptions,
    *,
    device: int = 0,
    here: Environment | None = None,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
    build: EngineBuilder | None = None,
) -> Path:
    """The engine for ``onnx_path`` on GPU ``device``, from the cache, built there first on a miss.

    ``here`` describes the GPU and TensorRT (``tensorrt_lib.use_device(device)`` when not given).
    """
    if here is None:
        from fakelocator.runtime.tensorrt_lib import use_device

        here = use_device(device)
    onnx_path = Path(onnx_path)
    info = read_onnx_info(onnx_path)
    metadata = info.require_fakelocator()
    profile, _ = make_profile(INPUT_NAME, info.input().shape, options.batch, options.hw, metadata.preprocessing.size,
                              native=metadata.preprocessing.native)
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    engine = cached_engine_path(root, onnx_path, cache_key(here, info.sha256, profile, options))
    side = sidecar_path(engine)
    if engine.is_file() and side.is_file():
        try:
            sidecar = EngineSidecar.read(side)
            if not mismatches(sidecar, here) and sidecar.engine_sha256 == file_sha256(engine):
                return engine
        except FakeLocatorError as e:
            log(f"ignoring the unusable cached engine {engine}: {e}")
    log(f"building a TensorRT engine for {onnx_path} once on this machine (this takes a while): {engine}")
    (build or default_builder())(onnx_path, engine, options, device=device, log=log)
    return engine
