"""Ray Data (``locate_dataset``) against ``trt-locate`` on the same 1080p JPEGs: images/s and Ray's cost.

    python -m fakelocator.benchmarks.ray_batch --images 12 --rounds 2 --out runs/bench/ray-native.json
    python -m fakelocator.benchmarks.ray_batch --analysis fit --images 96 --rounds 3 --out runs/bench/ray-fit.json

Inputs: ``--images`` seeded photo-like 1080p JPEGs (``benchmarks.inputs``, quality 90) in a
temporary folder. Per round, in an order that rotates from round to round (so that a machine shared
with other jobs loads every configuration alike), it times:

- ``trt-locate`` on the folder, in a subprocess with its defaults (one process, ORT's threads =
  the CPUs): its own analysis time (the summary line's "analysed in S s": model loaded, files in
  the page cache) and the process's wall time;
- ``locate_dataset(read_binary_files(folder))`` with 1 actor (the CPUs' threads) and with 2 actors
  (half the threads each) on a local Ray started once (``num_cpus`` = the CPUs; each actor holds
  half a CPU so that the read task always finds one), ``--rows`` rows per actor call: the wall time
  from the dataset's start to its last row (actor start and model load included), the time to the
  first rows, and the steady rate after them.

Each run also records the CPU seconds its processes used (``CpuMeter``: this process, the
trt-locate subprocess, the local Ray's processes and actors), which, unlike images/s, does not
depend on the share of a loaded machine a run gets. Ray's overhead per image is its CPU ms per
image minus trt-locate's (fixed costs, actor start and model load, included and amortized over
``--images``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _tree_times(root: int) -> dict[tuple[int, int], int]:
    """{(pid, start time): own utime + stime in clock ticks} of ``root`` and every process under it."""
    parent: dict[int, int] = {}
    own: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, ...
        pid = int(entry)
        parent[pid] = int(fields[1])
        own[pid] = (int(fields[19]), int(fields[11]) + int(fields[12]))  # starttime; utime + stime
    found = {}
    for pid, (start, ticks) in own.items():
        p = pid
        while p not in (0, 1) and p != root:
            p = parent.get(p, 0)
        if p == root:
            found[(pid, start)] = ticks
    return found


class CpuMeter(threading.Thread):
    """CPU seconds used by this process and every process under it while the meter runs.

    The local Ray's GCS, raylet and workers are this process's descendants, so this is what a run
    cost in CPU whatever share of a loaded machine it got: the figure that stays comparable on a
    machine shared with other jobs. Ray reaps its workers without adding their time to the raylet's
    (``cutime``), so the tree is sampled every ``period`` seconds and each process's last sample
    counts; a process that ends loses at most its last ``period`` of CPU.
    """

    def __init__(self, period: float = 0.2):
        super().__init__(daemon=True)
        self.period = period
        self.root = os.getpid()
        self.start_ticks = _tree_times(self.root)
        self.last = dict(self.start_ticks)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.period):
            self.last.update(_tree_times(self.root))

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        self.last.update(_tree_times(self.root))
        ticks = sum(v - self.start_ticks.get(k, 0) for k, v in self.last.items())
        return ticks / os.sysconf("SC_CLK_TCK")


def write_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    import numpy as np

    from fakelocator.benchmarks.inputs import KINDS, encode_jpeg, synthetic_photo

    height, width = KINDS["1080p"]
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"frame-{i:04d}.jpg"
        path.write_bytes(encode_jpeg(synthetic_photo(height, width, rng)))
        paths.append(path)
    return paths


def time_trt_locate(folder: Path, out: Path, model: str | None, analysis: str | None) -> dict:
    argv = [sys.executable, "-m", "fakelocator.runtime.cli", str(folder), "--out", str(out), "--quiet", "--overwrite"]
    argv += ["--model", model] if model else []
    argv += ["--analysis", analysis] if analysis else []
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"trt-locate failed ({done.returncode}): {done.stderr[-2000:]}")
    match = re.search(r"(\d+) analysed in ([0-9.]+) s", done.stderr)
    images, seconds = int(match.group(1)), float(match.group(2))
    return {"images": images, "run_s": seconds, "images_per_s": images / seconds, "process_wall_s": wall}


def time_ray(folder: Path, actors: int, rows: int, model: str | None, analysis: str | None) -> dict:
    import ray.data

    from fakelocator.integrations.ray import locate_dataset

    cpus = os.cpu_count() or 1
    options = {"threads": max(1, cpus // actors), "backend": "onnxruntime"}
    if analysis:
        options["analysis"] = analysis
    t0 = time.perf_counter()
    ds = ray.data.read_binary_files(str(folder), include_paths=True)
    out = locate_dataset(ds, model, concurrency=actors, num_cpus=0.5, batch_size=rows, **options)
    arrivals: list[tuple[float, int]] = []
    failed = 0
    for table in out.iter_batches(batch_format="pyarrow", batch_size=None):
        arrivals.append((time.perf_counter() - t0, table.num_rows))
        failed += sum(e is not None for e in table.column("error").to_pylist())
    wall = arrivals[-1][0]
    images = sum(n for _, n in arrivals)
    first_t, first_n = arrivals[0]
    steady = (images - first_n) / (wall - first_t) if wall > first_t else None
    return {"images": images, "failed": failed, "wall_s": wall, "images_per_s": images / wall,
            "first_rows_s": first_t, "first_rows": first_n, "steady_images_per_s": steady}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fakelocator.benchmarks.ray_batch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=12)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--rows", type=int, default=2, help="rows per actor call (default: 2)")
    p.add_argument("--model", help="default: the embedded model")
    p.add_argument("--analysis", choices=("fit", "native"), help="default: the model's")
    p.add_argument("--out", type=Path, required=True, help="JSON results")
    args = p.parse_args(argv)

    import ray
    import ray.data

    results: dict = {"images": args.images, "rows_per_call": args.rows, "analysis": args.analysis or "the model's",
                     "model": args.model or "embedded default", "cpus": os.cpu_count(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="fakelocator-ray-bench-") as tmp:
        folder = Path(tmp) / "frames"
        folder.mkdir()
        write_images(folder, args.images)
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            configs = ["trt-locate", "ray-1-actor", "ray-2-actors"]
            for r in range(args.rounds):
                order = configs[r % 3:] + configs[:r % 3]
                for config in order:
                    load, meter = os.getloadavg()[0], CpuMeter()
                    meter.start()
                    if config == "trt-locate":
                        run = time_trt_locate(folder, Path(tmp) / "out", args.model, args.analysis)
                    else:
                        run = time_ray(folder, 1 if config == "ray-1-actor" else 2, args.rows, args.model, args.analysis)
                    cpu = meter.stop()
                    run.update(config=config, round=r, cpu_s=cpu, cpu_ms_per_image=1000 * cpu / args.images,
                               load_before=load, load_after=os.getloadavg()[0],
                               utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
                    results["runs"].append(run)
                    print(json.dumps(run), file=sys.stderr, flush=True)
        finally:
            ray.shutdown()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
