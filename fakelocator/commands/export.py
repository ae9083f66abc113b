"""Export a trained model for serving, and check every artifact as it is made.

  fakelocator export onnx model.safetensors -o model.onnx [--fp16] [--dynamic-hw]
      one self-contained ONNX file (opset 18, dynamic batch) with the preprocessing contract in its
      metadata; checked with onnx.checker and against PyTorch on ONNX Runtime. Given an .onnx and
      --fp16, converts it to mixed precision (checked against the fp32 file).
  fakelocator export onnx model.onnx --int8 -o model.int8.onnx [--calibration DIR] [--force]
      an INT8 QDQ ONNX (per-channel int8 weights; uint8 activations for the CPU, symmetric int8 with
      --int8-target tensorrt), calibrated on native-scale tiles like the runtime's, written only when
      it passes an accuracy gate against the fp32 model on a held-out set (figures in its metadata).
  fakelocator export engine model.onnx -o model.engine --batch-range 1,16,64 [--fp16 | --int8]
      a TensorRT engine (pure plan) and its sidecar model.engine.json; needs TensorRT and a GPU.
  fakelocator export triton model.onnx|model.engine --repo models/ [--model-backend python]
      a Triton Inference Server model repository: the server-side pipeline (encoded images in,
      full-resolution maps and scores out) and the network; serve it with `fakelocator serve models/`.
  fakelocator export check model.onnx|model.engine [--against model.safetensors|other.onnx|model.engine]
      inputs, outputs, metadata, opset, and a parity report (exit 1 when out of bounds).

docs/export.md walks through all of it, with the tolerances and what was not verified.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fakelocator.errors import FakeLocatorError
from fakelocator.flags import deprecated_alias


def gpu_index(text: str) -> int:
    """``--device`` of ``export engine`` and ``export check`` (TensorRT: GPUs only): ``auto``, ``cuda``
    or ``cuda:N`` (a bare index N is accepted too) → the GPU index."""
    value = text.strip().lower()
    if value == "cpu":
        raise argparse.ArgumentTypeError("TensorRT engines run on GPUs only: give auto, cuda or cuda:N")
    value = "0" if value in ("auto", "cuda") else value.removeprefix("cuda:")
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a GPU: give auto, cuda or cuda:N")
    return int(value)


GPU_DEVICE_HELP = "auto, cuda or cuda:N (default auto: cuda:0; TensorRT runs on GPUs only)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="export_command", metavar="WHAT", required=True)

    p = sub.add_parser("onnx", help="export a checkpoint to ONNX (or convert an ONNX to fp16)",
                       description="Export a checkpoint to one self-contained ONNX file and check it against PyTorch. "
                       "Given an .onnx and --fp16, convert it to mixed precision and check it against the fp32 file.")
    p.add_argument("model", help="a .safetensors/.pt checkpoint (or, with --fp16 or --int8, an fp32 .onnx)")
    p.add_argument("-o", "--output", help="the .onnx to write (default: beside MODEL, model.onnx, model.fp16.onnx or "
                   "model.int8.onnx; never inside the installed fakelocator package)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18: ONNX Runtime and TensorRT >= 10 run it)")
    p.add_argument("--dynamic-hw", action="store_true", help="dynamic height and width (batch is always dynamic)")
    low = p.add_mutually_exclusive_group()
    low.add_argument("--fp16", action="store_true", help="mixed precision: fp16 inside, fp32 inputs and outputs")
    low.add_argument("--int8", action="store_true", help="INT8 QDQ, calibrated and gated (docs/export.md, INT8)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip onnx.checker and the parity check (with --int8: the accuracy gate, so no figures)")
    p.add_argument("--exporter", choices=("dynamo", "legacy"), default="dynamo", help="torch exporter (default dynamo)")
    q = p.add_argument_group("INT8 (with --int8)")
    q.add_argument("--int8-target", choices=("cpu", "tensorrt"), default="cpu",
                   help="cpu: uint8 asymmetric activations, ONNX Runtime's fast path on x86 (default); tensorrt: "
                   "symmetric int8 activations, the only integer QDQ TensorRT builds")
    q.add_argument("--calibration", metavar="DIR",
                   help="calibrate on your images (default: the bundled photos and the synthesis stream)")
    q.add_argument("--calibration-tiles", type=int, default=256, metavar="N",
                   help="network inputs to calibrate on: tiles for a native model (default 256)")
    q.add_argument("--calibration-method", choices=("minmax", "percentile", "entropy"), default="minmax",
                   help="activation range estimator (default minmax)")
    q.add_argument("--calibration-seed", type=int, default=0, help="seed of the calibration inputs (default 0)")
    q.add_argument("--int8-float-ops", metavar="OPS", default="",
                   help="op types left in float, comma-separated (default: none)")
    q.add_argument("--gate-images", type=int, default=96, metavar="N",
                   help="items of the generated held-out set the gate measures on (default 96)")
    q.add_argument("--force", action="store_true",
                   help="write the int8 file even when it fails the accuracy gate (its metadata records the failure)")
    p.set_defaults(_export=run_onnx)

    p = sub.add_parser("engine", help="build a TensorRT engine and its sidecar from an ONNX file",
                       description="Build a TensorRT engine (a pure plan) and MODEL.engine.json. Precision follows the "
                       "ONNX (strongly typed network): an INT8 QDQ ONNX gives an INT8 engine; --fp16 with an fp32 ONNX "
                       "converts it first. Needs TensorRT and a GPU.")
    p.add_argument("onnx", help="an ONNX file written by `fakelocator export onnx`")
    p.add_argument("-o", "--output", help="the engine to write (default: ONNX with .engine)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing engine (and its sidecar)")
    p.add_argument("--batch-range", metavar="MIN,OPT,MAX", help="the engine's batch profile, MIN,OPT,MAX or MAX (default "
                   "1,8,32; 1,32,64 for a model made for native analysis, whose inputs are tiles, tens per image)")
    deprecated_alias(p, "--batch", "--batch-range", "batch_range")
    p.add_argument("--hw", help="for an ONNX with dynamic H/W: HxW or MINHxMINW,OPTHxOPTW,MAXHxMAXW (not for a native "
                   "model: its engine takes its tiles only)")
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_const", dest="precision", const="fp16",
                           help="FP16 engine: an fp32 ONNX is converted to mixed precision first")
    precision.add_argument("--fp32", action="store_const", dest="precision", const="fp32", help="refuse an fp16 ONNX")
    precision.add_argument("--int8", action="store_const", dest="precision", const="int8",
                           help="INT8 engine (explicit quantization) from an INT8 QDQ ONNX made with "
                           "`export onnx MODEL --int8 --int8-target tensorrt`")
    p.set_defaults(precision="auto")
    p.add_argument("--weak-fp16", action="store_true",
                   help="weakly typed network with the FP16 builder flag (deprecated in TensorRT 10.12, absent in 11)")
    p.add_argument("--no-tf32", dest="tf32", action="store_false", help="no TF32 math for fp32 layers")
    p.add_argument("--workspace", help="workspace memory limit, e.g. 4GiB (default: TensorRT's)")
    p.add_argument("--opt-level", type=int, default=3, help="builder optimization level 0-5 (default 3)")
    p.add_argument("--timing-cache", help="timing cache file, loaded if present and saved after the build")
    p.add_argument("--hardware-compatibility", choices=("none", "ampere_plus", "same_compute_capability"), default="none",
                   help="build for other GPUs too (slower engine)")
    p.add_argument("--version-compatible", action="store_true", help="runs on later TensorRT versions too (slower engine)")
    p.add_argument("--exclude-lean-runtime", action="store_true", help="with --version-compatible: leave the lean runtime out")
    p.add_argument("--device", type=gpu_index, default="auto", metavar="DEVICE", help=GPU_DEVICE_HELP)
    p.add_argument("--verbose", action="store_true", help="show TensorRT's info messages")
    p.add_argument("--no-check", dest="check", action="store_false", help="skip the TensorRT vs ONNX Runtime parity check")
    p.set_defaults(_export=run_engine)

    p = sub.add_parser("triton", help="write a Triton Inference Server model repository",
                       description="Write a Triton repository: the pipeline REPO/NAME (Python backend: encoded images in; "
                       "per image the map at its own size, shape, score, label, error) and the network REPO/NAME_model "
                       "(onnxruntime, tensorrt or python backend, dynamic batching). Serve it with `fakelocator serve REPO`.")
    p.add_argument("model", help="an ONNX file (onnxruntime or python backend) or an engine with its sidecar (tensorrt backend)")
    p.add_argument("--repo", required=True, help="the model repository folder")
    p.add_argument("--name", default="fakelocator", help="the pipeline model's name; the network is NAME_model (default fakelocator)")
    p.add_argument("--no-pipeline", dest="pipeline", action="store_false",
                   help="write the network alone, as NAME (clients preprocess themselves)")
    p.add_argument("--model-backend", choices=("auto", "onnxruntime", "tensorrt", "python"), default="auto",
                   help="the network's Triton backend (default auto: tensorrt for a plan; for an ONNX, onnxruntime on GPU "
                   "instances, python on the CPU); python: the runtime's onnxruntime backend inside Triton's Python backend, "
                   "which every Triton has, the one `fakelocator serve` brings (nvidia-pytriton's) included")
    p.add_argument("--model-version", dest="version", type=int, default=1, metavar="N",
                   help="the models' version folder in the repository (default 1)")
    deprecated_alias(p, "--version", "--model-version", "version", type=int)
    p.add_argument("--max-batch", type=int, help="the network's max_batch_size (default: the engine's max batch, 32 for ONNX)")
    p.add_argument("--preferred", help="preferred batch sizes, e.g. 8,32 (default: engine opt,max; none for ONNX)")
    p.add_argument("--queue-delay-us", type=int, default=2000, help="the network's dynamic batcher max queue delay (default 2000)")
    p.add_argument("--no-dynamic-batching", dest="dynamic_batching", action="store_false",
                   help="no dynamic batcher in front of either model (each request runs alone; for comparisons)")
    p.add_argument("--kind", choices=("auto", "gpu", "cpu"), default="auto",
                   help="the network's instance kind (default auto: a plan on GPUs; an ONNX on GPUs when --gpus is given, else CPU)")
    p.add_argument("--count", type=int, default=1, help="network instances per GPU (or in all, on the CPU; default 1)")
    p.add_argument("--gpus", help="GPU indices for the network instances, e.g. 0,1 (default all)")
    p.add_argument("--no-warmup", dest="warmup", action="store_false", help="no warm-up request")
    p.add_argument("--no-features", dest="features", action="store_false", help="do not serve the features output")
    p.add_argument("--map-dtype", choices=("uint8", "float16"), default="uint8",
                   help="the pipeline's map output (default uint8: map x 255, as trt-locate writes it)")
    p.add_argument("--pipeline-instances", type=int, default=1, help="pipeline instances (processes; default 1)")
    p.add_argument("--pipeline-max-batch", type=int, default=16, help="images per pipeline execution (default 16)")
    p.add_argument("--pipeline-queue-delay-us", type=int, default=5000,
                   help="the pipeline's dynamic batcher max queue delay (default 5000)")
    p.add_argument("--threshold", type=float, default=None,
                   help="score at or above which the label is fake (default: the model's calibrated threshold, from its metadata)")
    p.add_argument("--threads", type=int, default=0,
                   help="intra-op threads of a python-backend network (default 0: ONNX Runtime's)")
    p.add_argument("--analysis", choices=("fit", "native"),
                   help="the pipeline's analysis, as trt-locate's --analysis (default: the model's)")
    p.add_argument("--tile-overlap", type=int, help="native analysis: pixels neighbouring tiles share (default: the model's)")
    p.add_argument("--tile-pooling", choices=("max", "mean", "top2"),
                   help="native analysis: how tile scores become the image's (default: the model's)")
    p.add_argument("--max-tiles", type=int,
                   help="native analysis: images taking more tiles get an error (default: the runtime's; 0: no limit)")
    p.add_argument("--overwrite", action="store_true", help="replace existing models of the same names")
    p.set_defaults(_export=run_triton)

    p = sub.add_parser("check", help="describe an ONNX file or engine and compare it with a reference",
                       description="Print inputs, outputs, metadata and opset, then a parity report: against --against "
                       "(a checkpoint, an ONNX or an engine) or, without it, batched vs one image at a time. Exit 1 when "
                       "the report is out of bounds.")
    p.add_argument("model", help="an .onnx or an .engine (with its sidecar)")
    p.add_argument("--against", help="the reference: a .safetensors/.pt checkpoint, an .onnx or an .engine")
    p.add_argument("--batch", type=int, default=3, metavar="N", help="network inputs per call in each parity case (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random cases (default 0)")
    p.add_argument("--max-abs", type=float, help="override the max |Δmap| and |Δscore| bound")
    p.add_argument("--min-cosine", type=float, help="override the map COSS bound")
    p.add_argument("--device", type=gpu_index, default="auto", metavar="DEVICE", help="for engines: " + GPU_DEVICE_HELP)
    p.set_defaults(_export=run_check)


def run(args: argparse.Namespace) -> int:
    return int(args._export(args) or 0)


def package_folder() -> Path:
    """Where the fakelocator package is installed (its shipped weights live under it)."""
    import fakelocator

    return Path(fakelocator.__file__).resolve().parent


def output_path(given: str | None, default: Path, *, overwrite: bool, also: tuple[str, ...] = ()) -> Path:
    """The file an export writes: ``given`` or ``default``; refused inside the installed package
    (its shipped model must not be replaced by accident) and, without ``overwrite``, when it (or a
    companion file named ``output + suffix`` for each of ``also``) exists."""
    output = Path(given) if given else default
    package = package_folder()
    resolved = output.resolve()
    if resolved == package or package in resolved.parents:
        hint = "" if given else " (the default, beside MODEL)"
        raise FakeLocatorError(
            f"{output}{hint} is inside the installed fakelocator package ({package}); exports are never written "
            "there: give -o PATH outside it"
        )
    existing = [p for p in [output, *(Path(f"{output}{suffix}") for suffix in also)] if p.exists()]
    if existing and not overwrite:
        raise FakeLocatorError(f"{existing[0]} exists: pass --overwrite to replace it, or give another -o")
    return output


# ---- onnx ---------------------------------------------------------------------------------------


def run_onnx(args) -> int:
    model = Path(args.model)
    if args.int8:
        return _export_int8(args, model)
    if model.suffix.lower() == ".onnx":
        return _convert_fp16(args, model)
    output = output_path(args.output, model.with_name(model.stem + (".fp16.onnx" if args.fp16 else ".onnx")),
                         overwrite=args.overwrite)  # checked before torch is imported
    from fakelocator.export.onnx_export import export_onnx

    result = export_onnx(model, output, opset=args.opset, dynamic_hw=args.dynamic_hw, fp16=args.fp16,
                         check=args.check, exporter=args.exporter)
    print(result.summary())
    if result.parity is not None:
        print(result.parity.format())
    return 0


def _convert_fp16(args, source: Path) -> int:
    if not args.fp16 or args.dynamic_hw:
        raise FakeLocatorError(
            f"{source} is already ONNX: with --fp16 it is converted to mixed precision; to export (or change dynamic "
            "H/W) give the checkpoint"
        )
    from fakelocator.export.fp16 import convert_file_to_fp16
    from fakelocator.export.onnx_file import read_onnx_info
    from fakelocator.export.parity import FP16, compare, onnxruntime_runner, standard_cases

    output = output_path(args.output, source.with_name(source.stem + ".fp16.onnx"), overwrite=args.overwrite)
    metadata = read_onnx_info(source).require_fakelocator()
    convert_file_to_fp16(source, output, check=args.check)
    info = read_onnx_info(output)
    print(f"wrote {output} ({info.size / 2**20:.1f} MiB, fp16, opset {info.opset})\n  sha256 {info.sha256}")
    if args.check:
        report = compare(onnxruntime_runner(source), onnxruntime_runner(output), standard_cases(metadata.preprocessing), FP16)
        print(report.format())
        if not report.passed:
            output.unlink()
            raise FakeLocatorError(f"{output}: fp16 conversion is out of bounds ({'; '.join(report.failures[:3])}); removed it")
    return 0


def _export_int8(args, model: Path) -> int:
    import sys
    import tempfile

    from fakelocator.export.calibration import CalibrationConfig
    from fakelocator.export.int8 import QuantizeOptions, export_int8, held_out_families
    from fakelocator.export.int8_gate import GateSetConfig
    from fakelocator.export.onnx_file import read_onnx_info

    if args.dynamic_hw:
        raise FakeLocatorError("--int8 quantizes a static-H/W export (calibration feeds the model's own input size); "
                               "drop --dynamic-hw")
    stem = model.name[: -len(".onnx")] if model.name.lower().endswith(".onnx") else model.stem
    output = output_path(args.output, model.with_name(stem + ".int8.onnx"), overwrite=args.overwrite)
    calibration = CalibrationConfig(tiles=args.calibration_tiles, seed=args.calibration_seed,
                                    method=args.calibration_method, folder=args.calibration)
    options = QuantizeOptions(target=args.int8_target,
                              float_ops=tuple(op.strip() for op in args.int8_float_ops.split(",") if op.strip()))
    if args.gate_images < 1:
        raise FakeLocatorError(f"--gate-images must be at least 1, got {args.gate_images}")

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="fakelocator-int8-") as tmp:
        source = model
        if model.suffix.lower() != ".onnx":  # a checkpoint: the fp32 export first, checked as usual
            from fakelocator.export.onnx_export import export_onnx

            source = Path(tmp) / "model.onnx"
            fp32 = export_onnx(model, source, opset=args.opset, check=args.check, exporter=args.exporter)
            progress(f"exported the fp32 model first ({fp32.summary().splitlines()[0].removeprefix('wrote ')})")
        held_out = held_out_families(read_onnx_info(source).require_fakelocator())
        result = export_int8(source, output, calibration=calibration, options=options, gate=args.check,
                             gate_set=GateSetConfig(images=args.gate_images, families=held_out), force=args.force,
                             progress=progress)
    print(result.summary())
    if result.forced:
        print("WARNING: " + "=" * 70 + f"\nWARNING: {output} FAILED the accuracy gate and was written only because of "
              f"--force:\nWARNING: {'; '.join(result.gate.failures)}\nWARNING: " + "=" * 70, file=sys.stderr)
    return 0


# ---- engine -------------------------------------------------------------------------------------


def build_options(args, native: bool = False):
    """``BuildOptions`` from the command line; ``native``: the ONNX is made for native analysis (default batch)."""
    from fakelocator.export.engine_spec import default_batch, parse_batch, parse_hw, parse_size
    from fakelocator.runtime.engine_sidecar import BuildOptions

    return BuildOptions(
        batch=parse_batch(args.batch_range) if args.batch_range else default_batch(native),
        hw=parse_hw(args.hw) if args.hw else None,
        precision=args.precision,
        weak_fp16=args.weak_fp16,
        tf32=args.tf32,
        workspace=parse_size(args.workspace) if args.workspace else None,
        optimization_level=args.opt_level,
        hardware_compatibility=args.hardware_compatibility,
        version_compatible=args.version_compatible,
        exclude_lean_runtime=args.exclude_lean_runtime,
        timing_cache=args.timing_cache,
    )


def run_engine(args) -> int:
    from fakelocator.export.tensorrt_build import build_engine
    from fakelocator.runtime.tensorrt_lib import import_tensorrt

    onnx_path = Path(args.onnx)
    native = False
    if not args.batch_range:  # the default profile follows the model's analysis
        from fakelocator.export.onnx_file import read_onnx_info

        native = read_onnx_info(onnx_path).require_fakelocator().preprocessing.native
    options = build_options(args, native)  # bad options are reported before TensorRT is imported
    output = output_path(args.output, onnx_path.with_suffix(".engine"), overwrite=args.overwrite, also=(".json",))
    import_tensorrt()
    sidecar = build_engine(onnx_path, output, options, device=args.device, verbose=args.verbose)
    print(f"wrote {output} and {output}.json: {sidecar.precision}, {sidecar.profile.describe()}, "
          f"TensorRT {sidecar.tensorrt_version} on {sidecar.gpu_name}")
    if not args.check:
        return 0
    return _parity(output, Path(sidecar.onnx_path), device=f"cuda:{args.device}", batch=3, seed=0)


# ---- triton -------------------------------------------------------------------------------------


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise FakeLocatorError(f"{what} {text!r}: expected comma-separated integers") from None


def run_triton(args) -> int:
    from fakelocator.export.triton import TritonOptions, write_repository

    options = TritonOptions(
        name=args.name,
        pipeline=args.pipeline,
        model_backend=args.model_backend,
        max_batch_size=args.max_batch,
        preferred_batch_sizes=_ints(args.preferred, "--preferred"),
        max_queue_delay_us=args.queue_delay_us,
        dynamic_batching=args.dynamic_batching,
        instance_kind=args.kind,
        instance_count=args.count,
        gpus=_ints(args.gpus, "--gpus") or (),
        warmup=args.warmup,
        version=args.version,
        features=args.features,
        map_dtype=args.map_dtype,
        pipeline_instances=args.pipeline_instances,
        pipeline_max_batch=args.pipeline_max_batch,
        pipeline_queue_delay_us=args.pipeline_queue_delay_us,
        threshold=args.threshold,
        threads=args.threads,
        analysis=args.analysis,
        tile_overlap=args.tile_overlap,
        tile_pooling=args.tile_pooling,
        max_tiles=args.max_tiles,
    )
    write_repository(args.model, args.repo, options, overwrite=args.overwrite)
    repo = Path(args.repo).resolve()
    models = [options.name, options.network_name] if options.pipeline else [options.name]
    print(f"wrote {', '.join(f'{repo}/{m}' for m in models)}; serve with:\n"
          f"  fakelocator serve {repo}          (or: tritonserver --model-repository {repo})")
    return 0


# ---- check --------------------------------------------------------------------------------------


def run_check(args) -> int:
    model = Path(args.model)
    against = Path(args.against) if args.against else None
    for role, path in (("model", model), ("--against", against)):  # the file first, then its sidecar
        if path is not None and not path.exists():
            kind = "engine" if path.suffix in (".engine", ".plan") else "model"
            raise FakeLocatorError(f"{'' if role == 'model' else role + ' '}{kind} {path}: no such file")
    print(describe(model))
    return _parity(model, against, device=f"cuda:{args.device}", batch=args.batch, seed=args.seed,
                   max_abs=args.max_abs, min_cosine=args.min_cosine)


def describe(path: Path) -> str:
    """Inputs, outputs, opset and metadata of an ONNX file, or the sidecar of an engine."""
    from fakelocator.model_io import ENGINE_SUFFIXES

    if path.suffix.lower() == ".onnx":
        from fakelocator.export.onnx_file import read_onnx_info

        info = read_onnx_info(path)
        lines = [f"{path}  ({info.size / 2**20:.1f} MiB, sha256 {info.sha256})",
                 f"  opset {info.opset}, producer {info.producer or '?'}, precision {info.precision}"]
        lines += ["  inputs:"] + [f"    {s.describe()}" for s in info.inputs]
        lines += ["  outputs:"] + [f"    {s.describe()}" for s in info.outputs]
        lines.append("  metadata:")
        for key in sorted(info.props):
            lines.append(f"    {key}: {_pretty(info.props[key])}")
        lines += _quantization_lines(info.props)
        return "\n".join(lines)
    if path.suffix.lower() in ENGINE_SUFFIXES:
        from fakelocator.runtime.engine_sidecar import EngineSidecar, sidecar_path

        sidecar = EngineSidecar.read(sidecar_path(path))
        lines = [f"{path}  (sidecar {sidecar_path(path)})",
                 f"  built with TensorRT {sidecar.tensorrt_version} on {sidecar.gpu_name} "
                 f"(sm_{sidecar.compute_capability[0]}{sidecar.compute_capability[1]}), {sidecar.created}",
                 f"  precision {sidecar.precision} ({'strongly' if sidecar.strongly_typed else 'weakly'} typed), "
                 f"hardware compatibility {sidecar.options.hardware_compatibility}, "
                 f"version compatible {sidecar.options.version_compatible}",
                 f"  profile {sidecar.profile.describe()}",
                 f"  from {sidecar.onnx_path} (sha256 {sidecar.onnx_sha256}, opset {sidecar.onnx_opset})"]
        lines += ["  tensors:"] + [f"    {t['mode']} {t['name']}: {t['dtype']} {tuple(t['shape'])}" for t in sidecar.io]
        lines.append(f"  preprocessing: {json.dumps(sidecar.preprocessing, sort_keys=True)}")
        return "\n".join(lines)
    raise FakeLocatorError(f"model {path}: `export check` takes an .onnx or an engine (.engine, .plan, .trt)")


def _quantization_lines(props) -> list[str]:
    """An INT8 file's quantization record and accuracy gate, readable."""
    from fakelocator.metadata import read_quantization
    from fakelocator.export.int8_gate import format_gate

    record = read_quantization(props)
    if record is None:
        return []
    c = record.get("calibration", {})
    lines = [f"  quantization: {record.get('format')} for {record.get('target')}, activations {record.get('activations')}, "
             f"weights {record.get('weights')}, float ops {', '.join(record.get('float_ops') or []) or 'none'}",
             f"    calibration: {c.get('method')} on {c.get('tiles')} inputs ({c.get('analysis')}), seed {c.get('seed')}, "
             f"from {', '.join(f'{k} ({v})' for k, v in (c.get('sources') or {}).items())}",
             f"    source: {record.get('source', {}).get('file')} (sha256 {record.get('source', {}).get('sha256')})"]
    gate = record.get("gate")
    if gate is None:
        lines.append("    accuracy gate: not run (exported with --no-check)")
    else:
        lines += ["    " + line for line in format_gate(gate).splitlines()]
        if gate.get("forced"):
            lines.append("    WARNING: this file failed the gate and was written with --force")
    return lines


def _pretty(value: str) -> str:
    return value if len(value) <= 160 else value[:157] + "..."


def _parity(model: Path, against: Path | None, *, device: str, batch: int, seed: int,
            max_abs: float | None = None, min_cosine: float | None = None) -> int:
    """Compare ``model`` with ``against`` (or with itself one image at a time); 0 when within bounds."""
    from dataclasses import replace

    from fakelocator.export.parity import (
        OneByOne, bounds_for, compare, precision_of, runner_for, standard_cases,
    )

    candidate = runner_for(model, device=device, batch_size=max(batch, 1))
    if against is None:
        reference, candidate = candidate, OneByOne(candidate)
        bounds = bounds_for(precision_of(model))
    else:
        reference = runner_for(against, device=device, batch_size=max(batch, 1))
        bounds = bounds_for(precision_of(model), precision_of(against))
    if max_abs is not None:
        bounds = replace(bounds, name="custom", map_max_abs=max_abs, score_max_abs=max_abs)
    if min_cosine is not None:
        bounds = replace(bounds, name="custom", map_min_cosine=min_cosine)
    contract, extra = _contract_and_sizes(model)
    cases = standard_cases(contract, batch=batch, seed=seed, extra_sizes=extra)
    report = compare(reference, candidate, cases, bounds)
    print(report.format())
    return 0 if report.passed else 1


def _contract_and_sizes(model: Path):
    """The model's preprocessing contract, and extra (h, w) sizes to test when its H/W are dynamic."""
    from fakelocator.contract import Preprocessing
    from fakelocator.model_io import ENGINE_SUFFIXES

    if model.suffix.lower() in ENGINE_SUFFIXES:
        from fakelocator.runtime.engine_sidecar import EngineSidecar, sidecar_path

        sidecar = EngineSidecar.read(sidecar_path(model))
        contract = Preprocessing.from_dict(sidecar.preprocessing)
        profile = sidecar.profile
        sizes = {tuple(profile.min[2:]), tuple(profile.max[2:])} - {contract.size}
        return contract, sorted(sizes)
    from fakelocator.export.onnx_file import read_onnx_info

    info = read_onnx_info(model)
    contract = info.require_fakelocator().preprocessing
    h, w = contract.size
    return contract, [(h + 16, w + 48)] if info.dynamic_hw else []
