"""``fakelocator bench``: latency and throughput per backend, precision, batch size, input and stage.

For every available backend × precision × batch size × input kind × analysis (``fit``, ``native``;
default: what the model was made for) it measures

- end to end, through the runtime's own ``Locator`` (``end_to_end.py``): latency p50/p90/p99 of a
  ``locate(batch)`` call and the throughput of a ``locate_iter`` stream;
- each stage alone, with the runtime's own stage code (``stages.py``): decode, preprocess,
  host→device, inference, device→host, upsample, write (in ``native``: decode, tile, inference,
  stitch, write; the batch size counts tiles per inference call);
- the limits: achieved FLOP/s in the inference stage against the device's peak (FLOPs counted from
  the ONNX graph, ``flops.py``; peaks and measured ceilings, ``ceilings.py``), and the bytes moved
  by pre/post-processing against the measured copy bandwidth;

then the naive baseline in the same process (``baseline.py``) and its speed-up ratio, a long run
for memory growth (``memory.py``), and the project's targets (``targets.py``). ``report.py``
writes bench.json, bench.md and bench.png.

    from fakelocator.benchmarks.bench import BenchConfig, run_bench
    results = run_bench(BenchConfig(out=Path("runs/bench"), untrained="unet_lite", batches=(1, 8)))
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from fakelocator.benchmarks import ceilings, environment, models, targets
from fakelocator.benchmarks.budget import measurement_images
from fakelocator.benchmarks.end_to_end import Ticker, measure_end_to_end
from fakelocator.benchmarks.inputs import KINDS, make_pool
from fakelocator.benchmarks.stages import StageRunner, stage_bytes, stages_for, summarize_stages
from fakelocator.contract import ANALYSES
from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.spec import DEFAULT_MAX_TILES
from fakelocator.tiling import TileGrid

DEFAULT_BATCHES = (1, 8, 32, 64, 128)
PRECISIONS = ("fp32", "fp16", "int8")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchConfig:
    """What to measure; the CLI's options (``fakelocator bench --help``) map one to one onto it."""

    out: Path
    model: Path | None = None
    checkpoint: Path | None = None
    untrained: str | None = None
    backends: tuple[str, ...] = ()  # () = every available one
    precisions: tuple[str, ...] = ()  # () = fp32 on the CPU, fp16 and fp32 on a GPU
    batches: tuple[int, ...] = DEFAULT_BATCHES
    inputs: tuple[str, ...] = tuple(KINDS)
    iterations: int = 20  # timed batches per measurement, at least
    min_images: int = 100  # … and at least this many images: small batches get more iterations
    warmup: int = 3
    stages: bool = True
    baseline: bool = True
    baseline_images: int = 50
    memory_run: int = 10_000  # 0: no memory run
    memory_batch: int | None = None  # default: min(32, largest batch)
    memory_input: str = "1080p"
    device: str = "auto"
    threads: int = 0  # backend intra-op threads (onnxruntime, torch); 0 = the library's default
    ort_spinning: bool = False  # onnxruntime's spin-waiting intra-op threads (the runtime's default: off)
    workers: int | None = None  # the locator's decoding/upsampling threads; None = its default
    preprocessor: str = "auto"
    analyses: tuple[str, ...] = ()  # () = what the model was made for; ("fit", "native") sweeps both
    tile_overlap: int | None = None  # native: None = the model's
    tile_pooling: str | None = None
    max_tiles: int | None = DEFAULT_MAX_TILES
    pool_size: int = 16
    seed: int = 0
    budget_s: float = 300.0  # seconds of measuring to fit the plan into (budget.py); 0 = the plan as configured
    argv: tuple[str, ...] | None = None  # the command line, recorded in bench.json

    def __post_init__(self):
        problems = []
        if not self.batches or min(self.batches) < 1:
            problems.append(f"batch sizes must be >= 1, got {list(self.batches)}")
        if self.iterations < 1:
            problems.append(f"iterations must be >= 1, got {self.iterations}")
        if self.min_images < 0:
            problems.append(f"min_images must be >= 0, got {self.min_images}")
        if self.warmup < 0:
            problems.append(f"warmup must be >= 0, got {self.warmup}")
        unknown = [k for k in (*self.inputs, self.memory_input) if k not in KINDS]
        if unknown or not self.inputs:
            problems.append(f"inputs must be among {', '.join(KINDS)}, got {unknown or 'none'}")
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad:
            problems.append(f"precisions must be among {', '.join(PRECISIONS)}, got {bad}")
        if self.memory_run and self.memory_run < 10:
            problems.append(f"the memory run needs at least 10 images (0 to skip it), got {self.memory_run}")
        if self.budget_s < 0:
            problems.append(f"the time budget must be >= 0 seconds (0: no budget), got {self.budget_s}")
        if self.baseline_images < 1:
            problems.append(f"baseline images must be >= 1, got {self.baseline_images}")
        bad = [a for a in self.analyses if a not in ANALYSES]
        if bad:
            problems.append(f"analyses must be among {', '.join(ANALYSES)}, got {bad}")
        if problems:
            raise FakeLocatorError("; ".join(problems))

    def iterations_for(self, batch: int) -> int:
        """Timed batches at this batch size: ``iterations``, or more to reach ``min_images``."""
        return max(self.iterations, -(-self.min_images // batch))

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("out", "model", "checkpoint"):
            d[k] = None if d[k] is None else str(d[k])
        return d


@dataclass(frozen=True)
class Variant:
    """One backend at one precision, on one model file."""

    backend: str
    precision: str
    model: Path
    options: dict = field(default_factory=dict)
    reload_per_batch: bool = True  # False: one load serves every batch size (the largest is its limit)

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision}"


def resolve_device(device: str) -> str:
    """"cpu" or "cuda:N"; "auto" is the first GPU when any backend here can use one."""
    if device == "cpu" or device.startswith("cuda:"):
        return device
    if device == "cuda":
        return "cuda:0"
    if device != "auto":
        raise FakeLocatorError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    from fakelocator.runtime.backends import available

    if available("onnxruntime")[0]:
        from fakelocator.runtime.backends.onnxruntime import has_cuda

        if has_cuda():
            return "cuda:0"
    if available("torch")[0]:
        import torch

        if torch.cuda.is_available():
            return "cuda:0"
    return "cpu"


def plan_variants(
    config: BenchConfig, files: models.ModelFiles, device: str, precisions: tuple[str, ...]
) -> tuple[list[Variant], list[dict]]:
    """The variants to run, and those skipped with the reason. An explicitly named backend that cannot
    run here is an error; under the default (every backend) it is skipped and recorded."""
    from fakelocator.runtime.backends import PREFERENCE, available

    explicit = bool(config.backends)
    names = config.backends or PREFERENCE
    variants: list[Variant] = []
    skipped: list[dict] = []

    def skip(backend: str, precision: str | None, reason: str) -> None:
        if explicit:
            raise FakeLocatorError(f"backend {backend}{'' if precision is None else ' ' + precision}: {reason}")
        skipped.append({"backend": backend, "precision": precision, "reason": reason})

    for name in names:
        if name not in PREFERENCE:
            raise FakeLocatorError(f"unknown backend {name!r}; choose from {', '.join(PREFERENCE)}")
        ok, reason = available(name)
        if not ok:
            skip(name, None, reason)
            continue
        if name == "tensorrt" and device == "cpu":
            skip(name, None, "needs a GPU; the device is cpu")
            continue
        if name == "onnxruntime" and device != "cpu":
            from fakelocator.runtime.backends.onnxruntime import has_cuda

            if not has_cuda():
                skip(name, None, f"this onnxruntime has no CUDA provider (device {device}); pip install onnxruntime-gpu")
                continue
        if name == "tensorrt" and files.engine is not None:
            variants.append(Variant(name, "engine", files.engine, reload_per_batch=False))
            continue
        for precision in precisions:
            if precision == "int8" and name != "onnxruntime":
                skip(name, precision, "INT8 runs as a QDQ ONNX on onnxruntime here; for TensorRT build an INT8 engine "
                     "(fakelocator export engine model.int8.onnx --int8) and pass it as --model")
                continue
            if name == "torch":
                if files.checkpoint is None:
                    skip(name, precision, "no checkpoint (.safetensors/.pt) to load: pass --checkpoint")
                    continue
                options = {"fp16": precision == "fp16"}
                if config.threads:
                    options["threads"] = config.threads
                variants.append(Variant(name, precision, files.checkpoint, options))
                continue
            path = files.onnx_for(precision)
            if path is None:
                note = f" ({'; '.join(files.notes)})" if files.notes else ""
                skip(name, precision, f"no {precision} ONNX file{note}")
                continue
            if name == "onnxruntime":
                variants.append(Variant(name, precision, path, {"threads": config.threads, "spinning": config.ort_spinning}))
            else:  # tensorrt builds (and caches) one engine from the ONNX, for the largest batch
                variants.append(Variant(name, precision, path, reload_per_batch=False))
    return variants, skipped


def _ratios_to_fp32(runs: list[dict]) -> None:
    """``vs_fp32``: each row's images/s over the fp32 row of the same backend, input, analysis and batch."""
    key = lambda r: (r["backend"], r["input"], r.get("analysis", "fit"), r["batch"])  # noqa: E731
    fp32 = {key(r): r["end_to_end"]["images_per_s"] for r in runs if r["precision"] == "fp32"}
    for row in runs:
        ref = fp32.get(key(row))
        row["vs_fp32"] = row["end_to_end"]["images_per_s"] / ref if ref and row["precision"] != "fp32" else None


def _onnx_backends_can_run(config: BenchConfig, device: str) -> bool:
    """Whether a backend that runs ONNX files (so an fp16 ONNX is worth converting) can run here."""
    from fakelocator.runtime.backends import available

    names = config.backends or ("onnxruntime", "tensorrt")
    if "tensorrt" in names and device != "cpu" and available("tensorrt")[0]:
        return True
    if "onnxruntime" in names and available("onnxruntime")[0]:
        from fakelocator.runtime.backends.onnxruntime import has_cuda

        return device == "cpu" or has_cuda()
    return False


def measure_ceilings(device: str, progress: Progress) -> dict:
    progress("measuring the ceilings: memory copy bandwidth and a matrix product")
    out = {"host_copy": ceilings.host_copy_bandwidth(), "matmul": ceilings.matmul_ceiling(device)}
    gpu = environment.gpu_description(device)
    out["device_copy"] = ceilings.device_copy_bandwidth(device) if device != "cpu" else None
    out["peak"] = ceilings.peak_dict(ceilings.lookup_peak(gpu.get("name") if gpu else None))
    return out


def limits(row: dict, flops_per_image: int | None, ceiling: dict, contract, pool_shape: tuple[int, int]) -> dict:
    """Achieved FLOP/s in the inference stage and bytes/s in pre/post against the device's ceilings."""
    batch, stages = row["batch"], row["stages"]
    out: dict[str, Any] = {}
    infer = stages.get("infer", {})
    if flops_per_image and infer.get("p50_ms"):
        # flops_per_image is one network input's; in native analysis an image is tiles_per_image inputs and
        # the infer stage times all the tiles of ``batch`` images
        achieved = flops_per_image * row.get("tiles_per_image", 1) * batch / (infer["p50_ms"] / 1000)
        out["achieved_tflops"] = achieved / 1e12
        if row["device"] != "cpu":
            peak = ceiling.get("peak")
            key = "fp16_tflops" if row["precision"] == "fp16" else "fp32_tflops"
            if peak:
                out["peak_tflops"] = peak[key]
                out["fraction_of_peak"] = achieved / 1e12 / peak[key]
            measured = ceiling.get("matmul", {}).get(key)
            if measured:
                out["measured_matmul_tflops"] = measured
                out["fraction_of_measured_matmul"] = achieved / 1e12 / measured
    per_image = stage_bytes(*pool_shape, contract)
    bandwidth = ceiling["host_copy"]["gb_per_s"]  # pre/post run on the host in this runtime
    for stage in stages_for(contract.analysis)[1]:
        s = stages.get(stage, {})
        if s.get("p50_ms"):
            gbps = per_image[stage] * batch / (s["p50_ms"] / 1000) / 1e9
            out[f"{stage}_bytes_per_image"] = per_image[stage]
            out[f"{stage}_gb_per_s"] = gbps
            out[f"{stage}_fraction_of_host_copy"] = gbps / bandwidth
    return out


def _stage_fields(row: dict) -> None:
    """Per-image p50 of each stage, their serial sum, and the pre/post share of it."""
    stages, pre_post = stages_for(row.get("analysis", "fit"))
    per_image = {}
    for stage in stages:
        s = row["stages"].get(stage)
        per_image[stage] = s["p50_ms"] / row["batch"] if s and "p50_ms" in s else None
    row["stage_ms_per_image"] = per_image
    serial = sum(per_image[s] or 0.0 for s in stages if s != "write")
    row["serial_ms_per_image"] = serial  # decode → upsample (stitch), one after the other, without write
    prepost = sum(per_image[s] or 0.0 for s in pre_post)
    row["pre_post_fraction"] = prepost / serial if serial else None
    e2e = row["end_to_end"]["images_per_s"]
    row["pre_post_fraction_of_end_to_end"] = prepost / (1000 / e2e) if e2e else None


def _flops(files: models.ModelFiles, progress: Progress) -> dict:
    from fakelocator.benchmarks.flops import count_onnx_flops, count_torch_flops

    onnx_path = files.onnx if files.onnx is not None else files.onnx_fp16
    if onnx_path is not None:
        try:
            return {"source": f"ONNX graph {onnx_path}", **count_onnx_flops(onnx_path).to_dict()}
        except FakeLocatorError as e:
            progress(f"FLOPs: {e}")
            if files.checkpoint is None:
                return {"skipped": str(e)}
    if files.checkpoint is not None:
        try:
            from fakelocator.training.checkpoint import load_model

            net, _ = load_model(files.checkpoint)
            h, w = net.config.preprocessing.size
            total = count_torch_flops(net, (1, 3, h, w))
            return {"source": f"torch FlopCounterMode on {files.checkpoint}", "flops_per_image": total, "gflops_per_image": total / 1e9}
        except ImportError as e:
            return {"skipped": f"no ONNX file to count from, and torch is missing ({e.name})"}
    return {"skipped": "only a TensorRT engine was given: FLOPs are counted from the ONNX graph (pass the .onnx)"}


def run_bench(config: BenchConfig, *, progress: Progress = print, on_update: Callable[[dict], None] = lambda r: None) -> dict:
    """Measure everything ``config`` asks for; the bench.json dict (``report.write_all`` writes it)."""
    from fakelocator.runtime.backends import load_backend
    from fakelocator.runtime.preprocess import select_preprocessor

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    precisions = config.precisions or (("fp32",) if device == "cpu" else ("fp16", "fp32"))
    env = environment.describe(None if config.argv is None else list(config.argv), device)
    progress(f"device {device} ({(env['gpu'] or {}).get('name') or env['cpu']}), load average {env['load_average_start']}")

    files = models.prepare(
        model=config.model, checkpoint=config.checkpoint, untrained=config.untrained,
        want_fp16_onnx="fp16" in precisions and _onnx_backends_can_run(config, device),
        out_dir=out / "models", seed=config.seed, progress=progress,
    )
    variants, skipped = plan_variants(config, files, device, precisions)
    if not variants:
        reasons = "; ".join(f"{s['backend']}: {s['reason']}" for s in skipped)
        raise FakeLocatorError(f"no backend can run here ({reasons})")
    progress("variants: " + ", ".join(v.label for v in variants))

    results: dict[str, Any] = {
        "schema": 1,
        "environment": env,
        "config": config.to_dict(),
        "model": {**files.to_dict(), "flops": _flops(files, progress)},
        "ceilings": measure_ceilings(device, progress),
        "inputs": {},
        "runs": [],
        "skipped": skipped,
        "baseline": None,
        "memory": None,
    }
    flops_per_image = results["model"]["flops"].get("flops_per_image")
    pools = {}
    for kind in dict.fromkeys((*config.inputs, *((config.memory_input,) if config.memory_run else ()))):
        progress(f"generating {config.pool_size} {kind} JPEG inputs (seed {config.seed})")
        pools[kind] = make_pool(kind, size=config.pool_size, seed=config.seed)
        results["inputs"][kind] = pools[kind].describe()
    preprocessor = select_preprocessor(config.preprocessor)
    results["preprocessor"] = preprocessor.name
    config = _plan(config, variants, device, pools, preprocessor, results, progress)

    for variant in variants:
        shared = None
        try:
            for batch in sorted(config.batches):
                try:
                    if variant.reload_per_batch:
                        backend = load_backend(variant.model, variant.backend, device=device, batch_size=batch, **variant.options)
                    else:
                        if shared is None:
                            shared = load_backend(variant.model, variant.backend, device=device,
                                                  batch_size=max(config.batches), **variant.options)
                        backend = shared
                except (FakeLocatorError, RuntimeError, MemoryError) as e:
                    skipped.append({"backend": variant.backend, "precision": variant.precision, "batch": batch,
                                    "reason": f"could not load: {e}"})
                    progress(f"{variant.label} batch {batch}: could not load ({e})")
                    continue
                try:
                    _run_batch_size(config, variant, backend, batch, pools, preprocessor, results, flops_per_image, progress)
                except (FakeLocatorError, RuntimeError, MemoryError) as e:  # e.g. out of GPU memory at a large batch
                    skipped.append({"backend": variant.backend, "precision": variant.precision, "batch": batch,
                                    "reason": f"failed while measuring: {type(e).__name__}: {e}"})
                    progress(f"{variant.label} batch {batch}: failed while measuring ({type(e).__name__}: {e})")
                finally:
                    if variant.reload_per_batch:
                        backend.close()
                on_update(results)
        finally:
            if shared is not None:
                shared.close()

    if not results["runs"]:
        reasons = "; ".join(f"{s['backend']}: {s['reason']}" for s in skipped)
        raise FakeLocatorError(f"nothing could be measured ({reasons})")

    _ratios_to_fp32(results["runs"])
    if config.baseline:
        results["baseline"] = _run_baseline(config, files, device, pools, progress)
        for row in results["runs"]:
            base = (results["baseline"].get("inputs") or {}).get(row["input"])
            row["vs_baseline"] = row["end_to_end"]["images_per_s"] / base["images_per_s"] if base else None
        on_update(results)

    if config.memory_run:
        results["memory"] = _run_memory(config, variants[0], device, pools[config.memory_input], preprocessor, progress)
    results["environment"]["load_average_end"] = environment.load_average()
    results["targets"] = targets.evaluate(results)
    on_update(results)
    return results


def _plan(config: BenchConfig, variants: list[Variant], device: str, pools, preprocessor, results: dict, progress: Progress) -> BenchConfig:
    """Time the first variant on one image per input, fit the plan into ``config.budget_s``
    (``budget.py``), say the plan and its predicted duration; the config the benchmark then runs."""
    from fakelocator.benchmarks import budget
    from fakelocator.benchmarks.baseline import unavailable_reason
    from fakelocator.runtime.backends import load_backend
    from fakelocator.runtime.locator import Locator

    batch = min(config.batches)
    all_speeds = []
    for i, variant in enumerate(variants):
        progress(f"timing one warm image per input with {variant.label} to plan the run")
        backend = load_backend(variant.model, variant.backend, device=device,
                               batch_size=batch if variant.reload_per_batch else max(config.batches), **variant.options)
        try:
            speeds, analyses = budget.probe(
                lambda a: Locator(backend, batch_size=batch, preprocessor=preprocessor, workers=config.workers,
                                  **analysis_options(config, a)),
                pools, config.analyses or (None,), baseline=i == 0 and config.baseline and unavailable_reason() is None)
        finally:
            backend.close()
        all_speeds.append(speeds)
    asked, speeds = config, all_speeds[0]
    labels = {id(sp): v.label for v, sp in zip(variants, all_speeds)}
    others = list(all_speeds[1:])
    while True:
        if config.budget_s:
            config, prediction = budget.fit(asked, speeds, analyses, asked.budget_s, tuple(others))
        else:
            prediction = budget.predict(config, speeds, analyses, tuple(others))
        if not (config.budget_s and prediction["total"] > config.budget_s and others and not config.backends):
            break
        # Even the smallest plan is over the budget: under the default (every backend) the slowest of the
        # others is left out, as an unavailable backend is; naming it with --backend measures it.
        slowest = max(others, key=lambda sp: budget.predict(config, sp, analyses)["measurements"])
        alone = budget.predict(config, slowest, analyses)["measurements"]
        others.remove(slowest)
        reason = (f"too slow for the time budget here: its smallest plan alone is about {alone:.0f} s of the "
                  f"{config.budget_s:.0f} s (name it with --backend, or raise --budget-s)")
        label = labels[id(slowest)]
        variants[:] = [v for v in variants if v.label != label]
        results["skipped"].append({"backend": label.split()[0], "precision": label.split()[-1], "reason": reason})
        progress(f"{label}: left out, {reason}")
    progress(budget.describe(config, prediction, config.budget_s))
    changed = {k: [getattr(asked, k), getattr(config, k)] for k in ("batches", "iterations", "min_images", "warmup",
               "baseline_images", "memory_run") if getattr(asked, k) != getattr(config, k)}
    results["plan"] = {"budget_s": config.budget_s, "predicted_s": prediction,
                       "speeds": {labels[id(sp)]: sp.to_dict() for sp in all_speeds},
                       "changed_for_the_budget": {k: {"asked": a, "ran": r} for k, (a, r) in changed.items()}}
    results["config"] = config.to_dict()
    return config


def _run_batch_size(config, variant, backend, batch, pools, preprocessor, results, flops_per_image, progress) -> None:
    from fakelocator.runtime.locator import Locator

    limit = getattr(backend, "fixed_batch", None)
    if limit and batch != limit:
        results["skipped"].append({"backend": variant.backend, "precision": variant.precision, "batch": batch,
                                   "reason": f"the model has a static batch of {limit}"})
        return
    if backend.max_batch and batch > backend.max_batch:
        results["skipped"].append({"backend": variant.backend, "precision": variant.precision, "batch": batch,
                                   "reason": f"over the backend's largest batch {backend.max_batch}"})
        return
    for analysis in config.analyses or (None,):
        locator = Locator(backend, batch_size=batch, preprocessor=preprocessor, workers=config.workers,
                          **analysis_options(config, analysis))
        _run_analysis(config, variant, backend, batch, pools, preprocessor, results, flops_per_image, progress, locator)


def analysis_options(config: BenchConfig, analysis: str | None) -> dict:
    """The ``Locator`` options of one analysis of the sweep (None: the model's own)."""
    return {"analysis": analysis, "tile_overlap": config.tile_overlap, "tile_pooling": config.tile_pooling,
            "max_tiles": config.max_tiles}


def _run_analysis(config, variant, backend, batch, pools, preprocessor, results, flops_per_image, progress, locator) -> None:
    contract = locator.contract
    iterations = config.iterations_for(batch)
    precision = backend.info.precision if variant.precision == "engine" else variant.precision
    for kind, pool in pools.items():
        if kind not in config.inputs:
            continue
        label = f"{variant.label} batch {batch} {kind} {contract.analysis}"
        row: dict[str, Any] = {
            "input": kind, "backend": variant.backend, "precision": precision, "model": str(variant.model),
            "device": backend.device, "batch": batch, "preprocessor": preprocessor.name, "analysis": contract.analysis,
            "workers": locator.workers, "threads": config.threads, "iterations": iterations, "warmup": config.warmup,
        }
        if contract.native:
            row["tiles_per_image"] = len(TileGrid.of(pool.height, pool.width, *contract.size, contract.tile_overlap))
            row["tile_overlap"], row["tile_pooling"] = contract.tile_overlap, contract.tile_pooling
        speeds = (results.get("plan") or {}).get("speeds", {}).get(variant.label, {})
        per_image = speeds.get("seconds_per_image", {}).get(f"{kind} {contract.analysis}")
        images = measurement_images(config, batch)
        estimate = f", about {images * per_image:.0f} s" if per_image else ""
        progress(f"{label}: measuring ({images} images{estimate})")
        t0 = time.perf_counter()
        if config.stages:
            runner = StageRunner(locator, write_dir=Path(config.out) / "_write")
            try:
                samples = runner.measure(pool, batch=batch, iterations=iterations, warmup=config.warmup,
                                         ticker=Ticker(progress, f"{label} stages", (config.warmup + iterations) * batch))
            finally:
                runner.close()
            row["stages"] = summarize_stages(samples, batch, backend.device)
        else:
            row["stages"] = {}
        row["end_to_end"] = measure_end_to_end(locator, pool, batch=batch, iterations=iterations, warmup=config.warmup,
                                               progress=progress, label=f"{label} end to end")
        _stage_fields(row)
        row["limits"] = limits(row, flops_per_image, results["ceilings"], contract, (pool.height, pool.width))
        results["runs"].append(row)
        e2e = row["end_to_end"]
        progress(f"{label}: {e2e['images_per_s']:.1f} images/s, latency p50 {e2e['latency']['p50_ms']:.1f} ms "
                 f"({time.perf_counter() - t0:.0f} s)")


def _baseline_model(files: models.ModelFiles):
    from fakelocator.training.checkpoint import load_model
    from fakelocator.training.config import ModelConfig
    from fakelocator.training.model import build_model

    if files.checkpoint is not None:
        net, _ = load_model(files.checkpoint)
        return net, f"the same weights ({files.checkpoint})"
    import torch

    torch.manual_seed(0)
    net = build_model(ModelConfig.from_dict(files.config)).eval()
    return net, "no checkpoint beside the model: the same architecture with random weights (speed does not depend on them)"


def _run_baseline(config, files, device, pools, progress) -> dict:
    from fakelocator.benchmarks.baseline import run_baseline, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        progress(f"baseline: skipped, {reason}")
        return {"skipped": reason}
    if not files.config and files.checkpoint is None:
        return {"skipped": "the model's configuration is unknown (no metadata, no checkpoint)"}
    net, weights = _baseline_model(files)
    out = {"weights": weights, "inputs": {}, "all_runs": {}}
    thread_settings = (None, 1) if device == "cpu" else (None,)  # see baseline.py: the faster one counts
    for kind in config.inputs:
        runs = []
        for threads in thread_settings:
            label = "torch's default threads" if threads is None else f"{threads} torch thread"
            progress(f"baseline (PyTorch eager fp32, one image at a time, {label}): {config.baseline_images} {kind} images")
            # PyTorch's CPU kernels take several calls to settle (oneDNN primitive creation): at least 5 warm-up images
            runs.append(run_baseline(net, pools[kind], device=device, images=config.baseline_images,
                                     warmup=max(config.warmup, 5), threads=threads))
            progress(f"baseline {kind}, {label}: {runs[-1]['images_per_s']:.1f} images/s")
        out["all_runs"][kind] = runs
        out["inputs"][kind] = max(runs, key=lambda r: r["images_per_s"])
    return out


def _run_memory(config, variant: Variant, device, pool, preprocessor, progress) -> dict:
    from fakelocator.benchmarks.memory import memory_run
    from fakelocator.runtime.backends import load_backend
    from fakelocator.runtime.locator import Locator

    batch = config.memory_batch or min(32, max(config.batches))
    progress(f"memory run: {config.memory_run} {pool.kind} images, {variant.label}, batch {batch}")
    backend = load_backend(variant.model, variant.backend, device=device, batch_size=batch, **variant.options)
    analysis = config.analyses[-1] if config.analyses else None  # the last of a sweep (native in fit,native)
    with Locator(backend, batch_size=batch, preprocessor=preprocessor, workers=config.workers,
                 **analysis_options(config, analysis)) as locator:
        result = memory_run(locator, pool, images=config.memory_run, device=backend.device, progress=progress)
        result["analysis"] = locator.contract.analysis
    result["precision"] = variant.precision
    rss = result["rss"]
    progress(f"memory run: {result['images_per_s']:.1f} images/s; RSS {rss['at_warmup_mb']:.0f} MB after warm-up, "
             f"growth {rss['growth_mb']:+.1f} MB")
    return result
