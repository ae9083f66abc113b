"""CPU cost of trt-locate's host path per 1080p ``native`` frame, with and without the uint8 writer.

    python -m fakelocator.benchmarks.writer_levels --frames 6 --pairs 5 --out runs/bench/writer_levels.json

trt-locate's ``run`` (``fakelocator.runtime.run``: decoding, tiling, inference, stitching, PNG maps,
records) is run on the same 1080p JPEGs (``inputs.make_pool("1080p")``, seeded) two ways:

- ``float32``: each map stitched to a float32 full-resolution map, quantized to 8 bits when the PNG
  is encoded (``RunOptions(map_levels=False)``, the path before the uint8 writer);
- ``uint8``: each map stitched straight to its 8-bit levels (``Preprocessor.stitch_u8``), the PNG
  encoded from them (``RunOptions()``, the default).

Both write the same bytes (tests/runtime/test_levels.py). The network is the default model's
contract (256² tiles, overlap 32: 45 tiles per frame) with a *replay* backend: it returns the
default model's own outputs for one batch of real tiles, recorded once, so the measured work is
the host path's and not the network's (the network's CPU time is one to two orders larger and
would bury the difference in its noise; docs/benchmarks.md gives it separately).

CPU-ms is the process's CPU time (``time.process_time``: every thread, user + system) per frame.
The machine is shared, so the two ways run as pairs, alternating which goes first, and the result
is the median over pairs of each way and of the paired difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from fakelocator.runtime.backends.base import Backend


class ReplayBackend(Backend):
    """Returns recorded network outputs (one row per input, cycling): the network's cost taken out."""

    name = "replay"
    device = "cpu"

    def __init__(self, info, outputs: dict[str, np.ndarray]):
        self.info = info
        self._outputs = outputs
        self._rows = len(outputs["score"])

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        index = np.arange(len(batch)) % self._rows
        return {k: v[index] for k, v in self._outputs.items()}


def recorded_backend(model: str | None, pool, batch: int) -> ReplayBackend:
    """The default (or given) model's outputs on the first ``batch`` tiles of the pool's first frame."""
    from fakelocator.runtime import Locator

    with Locator.load(model, device="cpu", batch_size=batch, pipeline="host") as locator:
        result = locator.locate(pool.item(0), keep_outputs=True)
        info = locator.info
    out = result.outputs
    maps = out["tile_maps"][:batch, None]  # (batch, 1, h, w)
    scores = out["tile_scores"][:batch, None]  # (batch, 1)
    return ReplayBackend(info, {"map": maps.astype(np.float32), "score": scores.astype(np.float32)})


def run_once(backend, pool, frames: int, levels: bool, batch: int, workers: int) -> tuple[float, float]:
    """(CPU-ms, wall-ms) per frame of ``run`` over ``frames`` frames of the pool, written to a temporary folder."""
    from fakelocator.runtime import Locator
    from fakelocator.runtime.inputs import expand
    from fakelocator.runtime.outputs import Journal, Layout
    from fakelocator.runtime.run import RunOptions, run

    with tempfile.TemporaryDirectory(prefix="fl-writer-") as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        for k in range(frames):
            (root / "in" / f"{k:03d}.jpg").write_bytes(pool.item(k))
        locator = Locator(backend, batch_size=batch, workers=workers, pipeline="host")
        layout = Layout(root / "out")
        journal = Journal(layout.results, resume=False, overwrite=False)
        try:
            c0, t0 = time.process_time(), time.perf_counter()
            stats = run(locator, expand([str(root / "in")]), layout, journal,
                        RunOptions(writers=workers, map_levels=levels))
            c1, t1 = time.process_time(), time.perf_counter()
        finally:
            journal.close()
        if stats.ok != frames:
            raise RuntimeError(f"{stats.failed} of {frames} frames failed: {stats.failures[:1]}")
    return (c1 - c0) * 1000 / frames, (t1 - t0) * 1000 / frames


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="an .onnx made for native analysis (default: the embedded model)")
    p.add_argument("--frames", type=int, default=6, help="1080p frames per run (default 6)")
    p.add_argument("--pairs", type=int, default=5, help="paired runs (default 5)")
    p.add_argument("--batch", type=int, default=8, help="tiles per inference call (default 8, trt-locate's)")
    p.add_argument("--workers", type=int, default=2, help="decoding/stitching/writing threads (default 2)")
    p.add_argument("--out", help="write the JSON result here too")
    args = p.parse_args(argv)

    from fakelocator.benchmarks.inputs import make_pool
    from fakelocator.runtime.preprocess import select_preprocessor

    pool = make_pool("1080p", size=max(args.frames, 1), seed=0)
    backend = recorded_backend(args.model, pool, args.batch)
    run_once(backend, pool, 1, True, args.batch, args.workers)  # warm-up: imports, caches, thread pools
    samples = {"float32": [], "uint8": []}
    for i in range(args.pairs):
        order = ("float32", "uint8") if i % 2 == 0 else ("uint8", "float32")
        for way in order:
            samples[way].append(run_once(backend, pool, args.frames, way == "uint8", args.batch, args.workers))
    cpu = {way: [c for c, _ in s] for way, s in samples.items()}
    wall = {way: [w for _, w in s] for way, s in samples.items()}
    diffs = [f - u for f, u in zip(cpu["float32"], cpu["uint8"])]
    result = {
        "what": "trt-locate host path (run()), CPU-ms and wall-ms per 1080p native frame; network replayed",
        "frames_per_run": args.frames, "pairs": args.pairs, "batch": args.batch, "workers": args.workers,
        "preprocessor": select_preprocessor("auto").name,
        "cpu_ms": {way: {"median": statistics.median(v), "runs": v} for way, v in cpu.items()},
        "wall_ms": {way: {"median": statistics.median(v), "runs": v} for way, v in wall.items()},
        "cpu_ms_saved_per_frame": {"median": statistics.median(diffs), "min": min(diffs), "max": max(diffs),
                                   "pairs_favouring_uint8": sum(d > 0 for d in diffs)},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
