"""Build a TensorRT engine from an ONNX file: the one module that calls TensorRT's builder.

Written from NVIDIA's TensorRT 10/11 Python API (samples and Polygraphy at release/10.16 and 11.1);
the decisions around the calls live in the pure ``engine_spec.py`` (precision, parser errors) and
``fakelocator.runtime.engine_sidecar`` (profiles, sidecar, compatibility). ``tensorrt`` and the
CUDA helpers are imported when a function runs, never at import. Not run in this project's environments (TensorRT installs only from NVIDIA's index);
tests/export/test_tensorrt_build.py checks the call sequence against a fake ``tensorrt`` module.

The sequence, as NVIDIA's samples do it::

    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger); parser.parse_from_file(onnx)  # errors: parser.get_error(i)
    config = builder.create_builder_config()  # workspace, optimization level, flags, profile, timing cache
    plan = builder.build_serialized_network(network, config)  # IHostMemory, or None on failure
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fakelocator import __version__
from fakelocator.errors import FakeLocatorError
from fakelocator.export.engine_spec import ParserError, PrecisionPlan, format_parser_errors, plan_precision
from fakelocator.files import atomic_write_bytes
from fakelocator.model_io import INPUT_NAME
from fakelocator.runtime import engine_cache
from fakelocator.runtime.engine_sidecar import BuildOptions, EngineSidecar, ShapeProfile, make_profile, sidecar_path
from fakelocator.runtime.onnx_info import file_sha256, read_onnx_info
# Importing TensorRT, the logger and the device are the runtime's (``fakelocator.runtime.tensorrt_lib``).
from fakelocator.runtime.tensorrt_lib import import_tensorrt, make_logger, use_device

__all__ = ["build_engine", "build_plan", "cached_engine", "parser_errors"]


def parser_errors(parser) -> list[ParserError]:
    errors = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        code = e.code()  # an ErrorCode enum (its name, e.g. UNSUPPORTED_NODE, is what the message shows)
        errors.append(ParserError(getattr(code, "name", str(code)), e.desc(), int(e.node()), e.node_name(), e.node_operator(), e.func()))
    return errors


def build_plan(
    trt,
    onnx_path: Path,
    profile: ShapeProfile,
    options: BuildOptions,
    precision: PrecisionPlan,
    *,
    log: Callable[[str], None] = print,
    verbose: bool = False,
):
    """Parse, configure and build. Returns (serialized plan, I/O tensor descriptions)."""
    logger = make_logger(trt, log, verbose)
    builder = trt.Builder(logger)
    flags = (1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)) if precision.strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = parser_errors(parser) or [ParserError("UNKNOWN", "parse_from_file returned False; see the messages above")]
        raise FakeLocatorError(format_parser_errors(onnx_path, errors))

    config = builder.create_builder_config()
    if options.workspace is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace))
    config.builder_optimization_level = int(options.optimization_level)
    if not options.tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
    if precision.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    if options.hardware_compatibility != "none":
        level = getattr(trt.HardwareCompatibilityLevel, options.hardware_compatibility.upper(), None)
        if level is None:
            raise FakeLocatorError(
                f"TensorRT {trt.__version__} has no hardware compatibility level {options.hardware_compatibility} "
                "(same_compute_capability needs TensorRT 10.9 or later)"
            )
        config.hardware_compatibility_level = level
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        if options.exclude_lean_runtime:
            config.set_flag(trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME)

    trt_profile = builder.create_optimization_profile()
    trt_profile.set_shape(profile.input, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(trt_profile)

    cache_file = Path(options.timing_cache) if options.timing_cache else None
    cache = None
    if cache_file is not None and cache_file.is_file():
        cache = config.create_timing_cache(cache_file.read_bytes())
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            log(f"timing cache {cache_file} was made for another GPU or TensorRT version; starting a new one")
            cache = None
    if cache is None:
        cache = config.create_timing_cache(b"")
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            raise FakeLocatorError("TensorRT refused an empty timing cache")

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        detail = "; ".join(logger.errors[-3:]) or "no error message from TensorRT"
        raise FakeLocatorError(f"TensorRT could not build an engine from {onnx_path}: {detail}")
    if cache_file is not None:
        atomic_write_bytes(cache_file, memoryview(config.get_timing_cache().serialize()))
        log(f"saved timing cache {cache_file}")
    io = [_describe(trt, network.get_input(i), "input") for i in range(network.num_inputs)]
    io += [_describe(trt, network.get_output(i), "output") for i in range(network.num_outputs)]
    return plan, io


def _describe(trt, tensor, mode: str) -> dict:
    return {
        "name": tensor.name,
        "mode": mode,
        "dtype": np.dtype(trt.nptype(tensor.dtype)).name,
        "shape": [int(d) for d in tensor.shape],
    }


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    options: BuildOptions = BuildOptions(),
    *,
    device: int = 0,
    log: Callable[[str], None] = print,
    verbose: bool = False,
) -> EngineSidecar:
    """Build ``engine_path`` (a pure plan) and its sidecar ``<engine_path>.json`` from a fakelocator ONNX.

    With ``options.precision == "fp16"`` and an fp32 ONNX, the ONNX is first converted to mixed
    precision (``<engine>.fp16.onnx``, e.g. ``model.engine.fp16.onnx``, beside the engine; a name no
    export uses, so no file of the user's is replaced) and the engine is built from that.
    """
    trt = import_tensorrt()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    source = read_onnx_info(onnx_path)
    metadata = source.require_fakelocator()
    from fakelocator.metadata import read_quantization

    quantization = read_quantization(source.props) or {}
    precision = plan_precision(
        source.precision, options, tensorrt_version=trt.__version__, has_fp16_flag=hasattr(trt.BuilderFlag, "FP16"),
        int8_target=quantization.get("target"),
    )
    for note in precision.notes:
        log(note)
    parsed = source
    if precision.convert_to_fp16:
        from fakelocator.export.fp16 import convert_file_to_fp16

        converted = engine_path.with_name(engine_path.name + ".fp16.onnx")
        convert_file_to_fp16(onnx_path, converted)
        log(f"converted {onnx_path} to mixed precision: {converted}")
        parsed = read_onnx_info(converted)
    profile, notes = make_profile(INPUT_NAME, parsed.input().shape, options.batch, options.hw, metadata.preprocessing.size,
                                 native=metadata.preprocessing.native)
    for note in notes:
        log(note)
    here = use_device(device)
    log(f"building on {here.describe()}; profile {profile.describe()}")
    start = time.perf_counter()
    plan, io = build_plan(trt, parsed.path, profile, options, precision, log=log, verbose=verbose)
    atomic_write_bytes(engine_path, memoryview(plan))
    log(f"wrote {engine_path} in {time.perf_counter() - start:.0f} s")
    sidecar = EngineSidecar(
        tensorrt_version=here.tensorrt_version,
        gpu_name=here.gpu_name,
        compute_capability=here.compute_capability,
        precision=precision.engine_precision,
        strongly_typed=precision.strongly_typed,
        profiles=(profile,),
        onnx_path=str(onnx_path),
        onnx_sha256=parsed.sha256,
        engine_sha256=file_sha256(engine_path),
        preprocessing=metadata.preprocessing.to_dict(),
        model_config=metadata.config,
        provenance=metadata.provenance,
        threshold=metadata.threshold,
        fakelocator_version=__version__,
        options=options,
        source_onnx_sha256=source.sha256 if parsed is not source else "",
        converted_onnx_path=str(parsed.path) if parsed is not source else "",
        onnx_opset=parsed.opset,
        io=tuple(io),
    ).stamped()
    sidecar.write(sidecar_path(engine_path))
    return sidecar


def cached_engine(
    onnx_path: str | Path,
    options: BuildOptions,
    *,
    device: int = 0,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """The engine for ``onnx_path`` from the engine cache (``fakelocator.runtime.engine_cache``), built by ``build_engine`` on a miss."""
    return engine_cache.cached_engine(onnx_path, options, device=device, cache_dir=cache_dir, log=log, build=build_engine)
