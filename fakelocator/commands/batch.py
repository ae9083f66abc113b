"""Locate manipulations in every image and video under a folder or bucket, on a Ray cluster.

  fakelocator batch INPUT_URI --out OUTPUT_URI [--ray ADDRESS] [--concurrency N] [--gpus-per-actor G]
                    [--model PATH] [--results jsonl|parquet] [--analysis fit|native] [--fps F] ...

INPUT_URI and OUTPUT_URI are local paths or pyarrow filesystem URIs (file://, s3://bucket/prefix,
S3-compatible stores with s3://bucket/prefix?endpoint_override=http://host:9000, gs://, hdfs://).
OUTPUT_URI gets trt-locate's layout: maps/<path under INPUT_URI without suffix>.png (8-bit gray, the
input's size; maps/<video>/<frame:06d>.png for sampled video frames) and the records: results.jsonl
for a local OUTPUT_URI, or results/part-*.parquet (--results parquet; the only choice on an object
store). A bad input is a record with its error; the run goes on.

Running it again on the same OUTPUT_URI resumes: inputs already recorded there are skipped.

--ray ADDRESS joins a running cluster (auto, or ray://head:10001); without it a local Ray is started
for the run. Each of the --concurrency actors loads the model once (one actor per GPU on a GPU
cluster: --concurrency = the number of GPUs, --gpus-per-actor 1); progress is Ray Data's.
The model must be a path every Ray worker can read. See docs/scale.md.

Exit status: 0 every input succeeded, 1 some failed, 2 usage, model or output error.
"""

from __future__ import annotations

import argparse
import sys

from fakelocator.flags import positive_int


def _resources(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT_URI", help="a folder, file, or filesystem URI (s3://bucket/prefix, ...)")
    parser.add_argument("--out", "-o", default="runs/batch", metavar="DIR",
                        help="where maps and records go: a folder, local or a filesystem URI such as s3://bucket/prefix (default: runs/batch)")
    parser.add_argument("--results", choices=("jsonl", "parquet"),
                        help="records as results.jsonl (local --out only) or results/part-*.parquet "
                        "(default: jsonl for a local --out, parquet otherwise)")
    g = parser.add_argument_group("Ray")
    g.add_argument("--ray", metavar="ADDRESS", help="a running Ray cluster: auto or ray://host:10001 (default: start a local one)")
    g.add_argument("--concurrency", type=positive_int, default=1, metavar="N", help="actors, one Locator each (default: 1)")
    g.add_argument("--gpus-per-actor", type=_resources, default=0.0, metavar="G", help="GPUs each actor holds (default: 0)")
    g.add_argument("--cpus-per-actor", type=_resources, default=1.0, metavar="C", help="CPUs each actor holds (default: 1)")
    g.add_argument("--rows-per-call", type=positive_int, default=16, metavar="N",
                   help="inputs per actor call (Ray Data's batch_size; default: 16)")
    g = parser.add_argument_group("model")
    g.add_argument("--model", "-m", metavar="PATH", help="an .onnx, .engine or checkpoint every worker can read (default: the embedded model)")
    g.add_argument("--backend", default="auto", choices=("auto", "tensorrt", "onnxruntime", "torch"),
                   help="inference backend in each actor; auto takes the fastest available for the model (default: auto)")
    g.add_argument("--batch", type=positive_int, default=8, metavar="N", help="network inputs per inference (default: 8)")
    g.add_argument("--threads", type=int, default=0, metavar="N", help="CPU inference threads per actor (default: the backend's)")
    g.add_argument("--analysis", choices=("native", "fit"), help="default: what the model was made for")
    g.add_argument("--threshold", type=float, help="score at or above which the label is fake (default: the locator's)")
    g = parser.add_argument_group("videos")
    video = g.add_mutually_exclusive_group()
    video.add_argument("--every", type=positive_int, metavar="N", help="analyse every N-th frame")
    video.add_argument("--fps", type=float, metavar="F", help="analyse F frames per second")
    g.add_argument("--max-frames", type=positive_int, metavar="N", help="at most N sampled frames per video")


def run(args: argparse.Namespace) -> int:
    # Without the ray extra this import fails, and fakelocator.cli says which extra to install.
    from fakelocator.integrations.batch import BatchOptions, run_batch

    locator_options = {"backend": args.backend}
    if args.threads:
        locator_options["threads"] = args.threads
    if args.analysis:
        locator_options["analysis"] = args.analysis
    if args.threshold is not None:
        locator_options["threshold"] = args.threshold
    options = BatchOptions(
        model=args.model, address=args.ray, concurrency=args.concurrency, batch_size=args.rows_per_call,
        num_gpus=args.gpus_per_actor, num_cpus=args.cpus_per_actor, inference_batch_size=args.batch,
        every=args.every, fps=args.fps, max_frames=args.max_frames, results=args.results or "auto",
        locator_options=locator_options,
    )
    stats = run_batch(args.input, args.out, options)
    rate = (stats.images + stats.frames) / stats.seconds if stats.seconds > 0 else 0.0
    print(
        f"fakelocator batch: {stats.inputs} input(s): {stats.images} image(s), {stats.videos} video(s), "
        f"{stats.frames} frame(s) recorded by this run, {stats.failed} failed, {stats.fake} fake, "
        f"{stats.skipped} already done; {stats.seconds:.1f} s ({rate:.1f} images and frames/s)",
        file=sys.stderr,
    )
    return 1 if stats.failed else 0
