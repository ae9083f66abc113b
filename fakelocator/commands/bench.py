"""Measure latency and throughput per backend, precision, batch size, input and stage.

  fakelocator bench [--out runs/bench] [--budget-s 300] [--model model.onnx] [--backend onnxruntime,torch]
                    [--batch-sizes 1,8,32,64,128] [--inputs 1080p,crop256,direct224] [--iterations 20]
                    [--warmup 3] [--baseline | --no-baseline] [--memory-run 10000] [--device auto]
                    [--analysis fit,native] [--tile-overlap N] [--tile-pooling max|mean|top2]

For every available backend × precision × batch × input kind × analysis: latency p50/p90/p99 of a
locate(batch) call and the throughput of a locate_iter stream (images/s), each stage alone
(decode, preprocess, host→device, inference, device→host, upsample, write; with --analysis native:
decode, tile, inference, stitch, write), achieved FLOP/s against
the device's peak and pre/post bytes against the copy bandwidth; the naive PyTorch baseline (needs
torch) with the speed-up ratio; a long run for memory growth; the project's targets.

The run fits a time budget (--budget-s, default 300 s of measuring): it first times one warm image
per input kind, predicts what the plan costs, and lowers the counts (memory run, iterations, the
largest batch sizes, baseline images; never raising what was asked) until the prediction fits. It
says the plan and its predicted duration before it starts, and the progress of every measurement.
--budget-s 0 runs the plan exactly as given: with the default model on a CPU (0.7 images/s at
1080p in native) the full default sweep would take hours.

Inputs are generated and seeded JPEGs (1080p frames, 256² face crops, 224² images), decoded for real.
Results go to --out: bench.json (every number and the environment), bench.md, bench.png.
Progress goes to stderr, the markdown table to stdout. docs/benchmarks.md explains every column.

  fakelocator bench --triton http://HOST:8000 [--concurrency 1,2,4,8,16] [--requests 32]
                    [--images-per-request 1] [--triton-inputs 1080p | --images FILE ...] [--scores-only]
                    [--request-timeout 120] [--out runs/bench]

A load test of a served repository (`fakelocator serve`), as perf_analyzer does: per concurrency
level, throughput and p50/p95/p99 latency of requests with encoded images, and the batches the server
formed. Run it once per repository to compare with and without dynamic batching.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fakelocator.errors import FakeLocatorError
from fakelocator.flags import DEVICE_HELP, deprecated_alias
from fakelocator.runtime.spec import DEFAULT_MAX_TILES


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one value")
    return values


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fakelocator.benchmarks.bench import DEFAULT_BATCHES
    from fakelocator.benchmarks.inputs import KINDS

    what = parser.add_argument_group("what to measure")
    what.add_argument("--model", type=Path, help="an .onnx, .engine or .safetensors/.pt (default: the embedded default model); "
                      "companions with the same stem are used by the other backends")
    what.add_argument("--checkpoint", type=Path, help="the checkpoint for the torch backend and the baseline (default: beside --model)")
    what.add_argument("--untrained", metavar="BACKBONE",
                      help="time an untrained ModelConfig(backbone=BACKBONE) instead (e.g. unet_lite, deeplabv3_resnet101); needs torch")
    what.add_argument("--backend", type=_names, default=(),
                      help="comma-separated: onnxruntime, torch, tensorrt (default: every available one)")
    what.add_argument("--precision", type=_names, default=(), help="fp32, fp16, int8 (int8: the model's .int8.onnx on onnxruntime, with its images/s ratio "
                      "to fp32; default: fp32 on the CPU, fp32 and fp16 on a GPU)")
    what.add_argument("--batch-sizes", type=_ints, default=DEFAULT_BATCHES, metavar="N,N,...",
                      help=f"network batch sizes to measure, comma-separated (default {','.join(map(str, DEFAULT_BATCHES))}; "
                      "at most, under --budget-s)")
    deprecated_alias(what, "--batch", "--batch-sizes", "batch_sizes", type=_ints)
    what.add_argument("--inputs", type=_names, default=tuple(KINDS), help=f"input kinds (default {','.join(KINDS)})")
    what.add_argument("--device", default="auto", metavar="DEVICE", help=f"{DEVICE_HELP} (default auto: a GPU when a backend can use one)")
    what.add_argument("--analysis", type=_names, default=(), metavar="fit,native",
                      help="analyses to measure, comma-separated: fit (one resized input per image), native (tiles at "
                      "the image's own scale; a batch then counts tiles per inference call); default: the model's own")
    what.add_argument("--tile-overlap", type=int, metavar="N", help="native: pixels neighbouring tiles share (default: the model's)")
    what.add_argument("--tile-pooling", choices=("max", "mean", "top2"), help="native: tile score pooling (default: the model's)")
    what.add_argument("--max-tiles", type=int, default=DEFAULT_MAX_TILES, metavar="N",
                      help=f"native: tile budget per image (default {DEFAULT_MAX_TILES}; 0 = no limit)")

    how = parser.add_argument_group("how")
    how.add_argument("--budget-s", type=float, default=300.0, metavar="SECONDS",
                     help="fit the plan into this many seconds of measuring, from the model's measured speed: the counts "
                     "below are maxima then (default 300; 0 = run them exactly, which can take hours with a slow model)")
    how.add_argument("--iterations", type=int, default=20, help="timed batches per measurement, at least (default 20)")
    how.add_argument("--min-images", type=int, default=100,
                     help="… and at least this many images, so that small batches get more batches (default 100)")
    how.add_argument("--warmup", type=int, default=3, help="untimed batches before each measurement (default 3)")
    how.add_argument("--no-stages", dest="stages", action="store_false", help="end to end only, no per-stage timing")
    how.add_argument("--baseline", dest="baseline", action="store_true", default=True, help="time the naive PyTorch baseline (default)")
    how.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the baseline")
    how.add_argument("--baseline-images", type=int, default=50, help="images timed through the baseline per input kind (default 50)")
    how.add_argument("--memory-run", type=int, default=10_000, metavar="N",
                     help="images in the memory-growth run (default 10000; 0 skips it)")
    how.add_argument("--memory-batch", type=int, metavar="N", help="network batch of the memory run (default min(32, largest of --batch-sizes))")
    how.add_argument("--memory-input", default="1080p", help="input kind of the memory run (default 1080p)")
    how.add_argument("--threads", type=int, default=0, help="backend intra-op threads (onnxruntime, torch; default 0 = theirs)")
    how.add_argument("--ort-spinning", action="store_true",
                     help="let onnxruntime's idle threads spin-wait (the runtime's default is not to)")
    how.add_argument("--workers", type=int, help="the locator's decoding/upsampling threads (default: its own)")
    how.add_argument("--preprocessor", default="auto", choices=("auto", "native", "numpy"), help="default auto (native when built)")
    how.add_argument("--pool", type=int, default=16, help="distinct generated images per input kind (default 16)")
    how.add_argument("--seed", type=int, default=0, help="seed of the generated inputs and models (default 0)")

    triton = parser.add_argument_group("Triton load test (instead of the in-process benchmark)")
    triton.add_argument("--triton", metavar="URL", help="a served pipeline model: http://HOST:8000 or grpc://HOST:8001")
    triton.add_argument("--triton-model", default="fakelocator", help="the pipeline model (default fakelocator)")
    triton.add_argument("--concurrency", type=_ints, default=(1, 2, 4, 8, 16), help="concurrency levels (default 1,2,4,8,16)")
    triton.add_argument("--requests", type=int, default=32, help="timed requests per level (default 32)")
    triton.add_argument("--images-per-request", type=int, default=1, help="images in each request (default 1)")
    triton.add_argument("--triton-warmup", type=int, default=1, help="untimed requests per client before each level (default 1)")
    triton.add_argument("--triton-inputs", default="1080p", help="generated input kind (default 1080p)")
    triton.add_argument("--images", type=Path, nargs="+", default=(), help="image files to send instead of generated ones")
    triton.add_argument("--scores-only", action="store_true", help="do not ask for the maps")
    triton.add_argument("--request-timeout", dest="timeout", type=float, default=120.0, metavar="SECONDS",
                        help="seconds per request (default 120)")
    deprecated_alias(triton, "--timeout", "--request-timeout", "timeout", type=float)

    parser.add_argument("--out", type=Path, default=Path("runs/bench"), metavar="DIR",
                        help="output folder for bench.json, bench.md, bench.png (with --triton: triton.json and triton.md; "
                        "default runs/bench)")


def run(args: argparse.Namespace) -> int:
    if args.triton:
        return run_triton(args)
    from fakelocator.benchmarks.bench import BenchConfig, run_bench
    from fakelocator.benchmarks.report import markdown, write_all, write_json

    config = BenchConfig(
        out=args.out, model=args.model, checkpoint=args.checkpoint, untrained=args.untrained,
        backends=args.backend, precisions=args.precision, batches=args.batch_sizes, inputs=args.inputs,
        iterations=args.iterations, min_images=args.min_images, warmup=args.warmup, stages=args.stages, baseline=args.baseline,
        baseline_images=args.baseline_images, memory_run=args.memory_run, memory_batch=args.memory_batch,
        memory_input=args.memory_input, device=args.device, threads=args.threads, ort_spinning=args.ort_spinning, workers=args.workers,
        preprocessor=args.preprocessor, pool_size=args.pool, seed=args.seed, budget_s=args.budget_s,
        analyses=args.analysis, tile_overlap=args.tile_overlap, tile_pooling=args.tile_pooling,
        max_tiles=args.max_tiles or None,
        argv=tuple(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else None,  # None: called as a library
    )
    if args.out.exists() and not args.out.is_dir():
        raise FakeLocatorError(f"--out {args.out} exists and is not a folder")

    def progress(message: str) -> None:
        print(f"bench: {message}", file=sys.stderr, flush=True)

    results = run_bench(config, progress=progress, on_update=lambda r: write_json(r, args.out / "bench.json"))
    paths = write_all(results, args.out)
    print(markdown(results))
    written = ", ".join(str(p) for p in paths.values() if p is not None)
    progress(f"wrote {written}" + ("" if paths["png"] else " (no PNG: matplotlib is not installed)"))
    return 0


def run_triton(args: argparse.Namespace) -> int:
    import json

    from fakelocator.benchmarks.triton_load import LoadConfig, run_load

    config = LoadConfig(
        url=args.triton, model=args.triton_model, concurrency=args.concurrency, requests=args.requests,
        images_per_request=args.images_per_request, warmup=args.triton_warmup, kind=args.triton_inputs,
        images=tuple(args.images), pool=min(args.pool, 8), maps=not args.scores_only, timeout_s=args.timeout, seed=args.seed,
    )
    report = run_load(config, progress=lambda m: print(f"bench: {m}", file=sys.stderr, flush=True))
    table = report.markdown()
    print(table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "triton.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        (args.out / "triton.md").write_text(table + "\n")
        print(f"bench: wrote {args.out / 'triton.json'} and {args.out / 'triton.md'}", file=sys.stderr)
    return 0
