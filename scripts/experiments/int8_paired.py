"""fp32 vs INT8 end to end, paired: whole `trt-locate` processes on the same 1080p JPEGs, interleaved.

On a machine shared with other jobs, two measurements taken minutes apart see different loads; here
each round runs fp32 then int8 (the order alternating between rounds) on the same files, and the
ratio is taken per round, so a load change hits both sides of a pair. Each run is a fresh process
(model load included, as a user's run), writes its maps (native analysis, 45 tiles per frame) and is
timed by wall clock and by the CPU time of the child process (all its threads).

    .venv/bin/python scripts/experiments/int8_paired.py --fp32 fakelocator/weights/default/model.onnx \
        --int8 fakelocator/weights/default/model.int8.onnx --images 12 --rounds 3 --out runs/int8_paired

Writes OUT/paired.json and prints a markdown table (docs/benchmarks.md, "INT8").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_inputs(folder: Path, n: int, seed: int) -> list[Path]:
    import numpy as np

    from fakelocator.benchmarks.inputs import encode_jpeg, synthetic_photo

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"frame{i:03d}.jpg"
        path.write_bytes(encode_jpeg(synthetic_photo(1080, 1920, rng)))
        paths.append(path)
    return paths


def run_once(model: str, inputs: Path, out: Path, threads: int) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one trt-locate process over ``inputs``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "fakelocator.runtime.cli", str(inputs), "--model", model, "--device", "cpu",
           "--backend", "onnxruntime", "--out", str(out), "--overwrite", "--quiet"]
    if threads:
        cmd += ["--threads", str(threads)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fp32", required=True)
    p.add_argument("--int8", required=True)
    p.add_argument("--images", type=int, default=12)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    from fakelocator.benchmarks.environment import cpu_model
    from fakelocator.runtime.precision import cpu_int8_flags

    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="int8-paired-") as tmp:
        inputs = Path(tmp) / "frames"
        inputs.mkdir()
        make_inputs(inputs, args.images, args.seed)
        run_once(args.fp32, inputs, Path(tmp) / "warm", args.threads)  # page cache, imports: untimed
        for r in range(args.rounds):
            order = ("fp32", "int8") if r % 2 == 0 else ("int8", "fp32")
            pair = {}
            for precision in order:
                model = args.fp32 if precision == "fp32" else args.int8
                wall, cpu = run_once(model, inputs, Path(tmp) / precision, args.threads)
                pair[precision] = {"wall_s": wall, "cpu_s": cpu, "images_per_s": args.images / wall,
                                   "cpu_ms_per_image": 1000 * cpu / args.images}
                print(f"round {r + 1} {precision}: {pair[precision]['images_per_s']:.3f} images/s, "
                      f"{pair[precision]['cpu_ms_per_image']:.0f} CPU-ms/image", file=sys.stderr, flush=True)
            pair["speedup"] = pair["int8"]["images_per_s"] / pair["fp32"]["images_per_s"]
            pair["cpu_ratio"] = pair["int8"]["cpu_ms_per_image"] / pair["fp32"]["cpu_ms_per_image"]
            rows.append(pair)
    med = lambda key, sub=None: statistics.median(r[key][sub] if sub else r[key] for r in rows)  # noqa: E731
    result = {
        "cpu": cpu_model(), "int8_flags": list(cpu_int8_flags()), "cores": os.cpu_count(),
        "load_average": os.getloadavg(), "images": args.images, "input": "1080p JPEG (benchmarks.inputs), native analysis",
        "rounds": rows,
        "median": {"fp32_images_per_s": med("fp32", "images_per_s"), "int8_images_per_s": med("int8", "images_per_s"),
                   "fp32_cpu_ms_per_image": med("fp32", "cpu_ms_per_image"),
                   "int8_cpu_ms_per_image": med("int8", "cpu_ms_per_image"),
                   "speedup": med("speedup"), "cpu_ratio": med("cpu_ratio")},
    }
    (args.out / "paired.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["median"]
    print(f"| precision | images/s | CPU-ms/image |\n|---|---|---|\n"
          f"| fp32 | {m['fp32_images_per_s']:.3f} | {m['fp32_cpu_ms_per_image']:.0f} |\n"
          f"| int8 | {m['int8_images_per_s']:.3f} | {m['int8_cpu_ms_per_image']:.0f} |\n"
          f"\nint8/fp32 per round (median of {len(rows)}): {m['speedup']:.2f} × images/s, {m['cpu_ratio']:.2f} × CPU time; "
          f"CPU {result['cpu']}, 8-bit dot-product flags: {', '.join(result['int8_flags']) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
