"""Benchmark of the native pre/post-processing kernels: CPU threads, CUDA, and the OpenCV/numpy path.

A seeded batch of frames (default 64 × 1080p, BGR) goes through

- preprocess: frames → (N, 3, 224, 224) network input (fp32 and, on the GPU, fp16);
- upsample: (N, 1, 224, 224) maps → full-resolution float32 maps;
- overlay: the same, fused with the colour-map overlay;
- tiles (``native`` analysis): frames → their (T, 3, 224, 224) normalized tiles at the frames' own
  scale (fp32 and, on the GPU, fp16; T = N × the tiles per frame, 60 for 1080p with the contract's
  32-pixel overlap);
- stitch (``native`` analysis): (T, 1, 224, 224) tile maps → full-resolution float32 maps, blended
  with the contract's window;

on each requested path, after checking that the paths agree (CUDA == CPU bit for bit, CPU vs the
Python contract within 1e-5). Times are medians over ``--repeats`` runs after a warm-up; on the GPU
they come from CUDA events on one stream, and the device's own copy bandwidth (a device-to-device
``cudaMemcpyAsync``) is measured alongside, so that "GB/s" can be read against what the memory
system delivers. GB/s counts nominal bytes: every input byte once plus every output byte once,
read and write both counted, as for the copy.

    python -m fakelocator.benchmarks.kernels --device cpu --batch 8 --threads 1,2
    python -m fakelocator.benchmarks.kernels --device cuda --batch 64 --output runs/bench/kernels-h100.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from fakelocator.contract import Preprocessing, to_full_resolution, to_network_input
from fakelocator.errors import FakeLocatorError
from fakelocator.tiling import tile_count


def jet_lut() -> np.ndarray:
    import cv2

    return cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, :]


def make_inputs(batch: int, height: int, width: int, contract: Preprocessing, seed: int):
    """(frames (N, H, W, 3) uint8 BGR, maps (N, 1, h, w) float32 in [0, 1])."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(batch, height, width, 3), dtype=np.uint8)
    maps = rng.random((batch, 1, contract.height, contract.width), dtype=np.float32)
    return frames, maps


def tiles_per_frame(frames: np.ndarray, contract: Preprocessing) -> int:
    return tile_count(frames.shape[1], frames.shape[2], contract.height, contract.width, contract.tile_overlap)


def make_tile_maps(frames: np.ndarray, contract: Preprocessing, seed: int) -> np.ndarray:
    """(N × tiles per frame, 1, h, w) float32 tile maps in [0, 1], the frames' tiles in order."""
    count = len(frames) * tiles_per_frame(frames, contract)
    return np.random.default_rng(seed + 1).random((count, 1, contract.height, contract.width), dtype=np.float32)


def stage_bytes(frames: np.ndarray, maps: np.ndarray, contract: Preprocessing) -> dict[str, int]:
    n, h, w, _ = frames.shape
    net = n * 3 * contract.height * contract.width
    tiles = n * tiles_per_frame(frames, contract) * contract.height * contract.width  # pixels of all tiles
    full = n * h * w
    return {
        "preprocess_fp32": frames.nbytes + 4 * net,
        "preprocess_fp16": frames.nbytes + 2 * net,
        "upsample": maps.nbytes + 4 * full,
        "upsample+overlay": maps.nbytes + 4 * full + 2 * frames.nbytes,  # + image in, overlay out
        "tiles_fp32": frames.nbytes + 4 * 3 * tiles,
        "tiles_fp16": frames.nbytes + 2 * 3 * tiles,
        "stitch": 4 * tiles + 4 * full,
        "copy_frames_h2d": frames.nbytes,
        "copy_maps_d2h": 4 * full,
    }


def median_ms(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def check_cpu(lib, frames, maps, contract, lut, samples: int = 2) -> dict[str, float]:
    """Max abs differences of the native CPU path from the Python contract on the first frames."""
    k = min(samples, len(frames))
    net = lib.preprocess(list(frames[:k]), "BGR", contract)
    pre = max(float(np.abs(net[i] - to_network_input(frames[i], contract, "BGR")).max()) for i in range(k))
    full = lib.postprocess(maps[:k], [f.shape[:2] for f in frames[:k]])[0]
    up = max(float(np.abs(full[i] - to_full_resolution(maps[i, 0], *frames[i].shape[:2])).max()) for i in range(k))
    return {"preprocess_max_abs_vs_contract": pre, "upsample_max_abs_vs_contract": up}


def bench_cpu(lib, frames, maps, contract, lut, threads: list[int], repeats: int, tile_maps: np.ndarray | None = None) -> list[dict]:
    import cv2

    rows = []
    images = list(frames)
    sizes = [f.shape[:2] for f in frames]
    net32 = np.empty((len(frames), 3, contract.height, contract.width), np.float32)
    full = [np.empty(s, np.float32) for s in sizes]
    over = [np.empty((*s, 3), np.uint8) for s in sizes]
    per = tiles_per_frame(frames, contract)
    tiles32 = np.empty((len(frames) * per, 3, contract.height, contract.width), np.float32)
    tile_maps = make_tile_maps(frames, contract, 0) if tile_maps is None else tile_maps
    per_image = [tile_maps[i * per : (i + 1) * per] for i in range(len(frames))]
    for t in threads:
        path = f"native cpu, {t} thread{'s' if t > 1 else ''}"
        rows.append({"stage": "preprocess_fp32", "path": path, "ms": median_ms(lambda: lib.preprocess(images, "BGR", contract, net32, threads=t), repeats)})
        rows.append({"stage": "upsample", "path": path, "ms": median_ms(lambda: lib.postprocess(maps, sizes, maps_out=full, threads=t), repeats)})
        rows.append(
            {
                "stage": "upsample+overlay",
                "path": path,
                "ms": median_ms(lambda: lib.postprocess(maps, images=images, lut=lut, maps_out=full, overlays_out=over, threads=t), repeats),
            }
        )
        rows.append({"stage": "tiles_fp32", "path": path, "ms": median_ms(lambda: lib.tiles(images, "BGR", contract, tiles32, threads=t), repeats)})
        rows.append(
            {
                "stage": "stitch",
                "path": path,
                "ms": median_ms(lambda: lib.stitch_batch(per_image, sizes, contract.tile_overlap, full, window=contract.tile_window, threads=t), repeats),
            }
        )

    def opencv_overlay():  # OpenCV's own colour map and blend: faster than numpy, rounding differs slightly
        for m, f in zip(maps, frames):
            full_map = to_full_resolution(m[0], *f.shape[:2])
            level = np.floor(full_map * np.float32(255) + np.float32(0.5)).astype(np.uint8)
            cv2.addWeighted(cv2.applyColorMap(level, cv2.COLORMAP_JET), 0.5, f, 0.5, 0.0)

    path = f"opencv/numpy (cv2 threads {cv2.getNumThreads()})"
    rows.append({"stage": "preprocess_fp32", "path": path, "ms": median_ms(lambda: [to_network_input(f, contract, "BGR") for f in frames], repeats)})
    rows.append({"stage": "upsample", "path": path, "ms": median_ms(lambda: [to_full_resolution(m[0], *s) for m, s in zip(maps, sizes)], repeats)})
    rows.append({"stage": "upsample+overlay", "path": path, "ms": median_ms(opencv_overlay, repeats)})
    return rows


def bench_cuda(
    lib, frames, maps, contract, lut, repeats: int, copy_bytes: int = 1 << 30, tile_maps: np.ndarray | None = None
) -> tuple[list[dict], dict]:
    from fakelocator.runtime import cuda
    from fakelocator.runtime.native import DeviceImage

    if not lib.has_cuda:
        raise FakeLocatorError(f"{lib.path} was built without CUDA; rebuild with nvcc available (make native)")
    n, h, w, _ = frames.shape
    net_shape = (n, 3, contract.height, contract.width)
    net_elems = int(np.prod(net_shape))
    stream = cuda.Stream()
    pinned = cuda.PinnedBuffer(frames.nbytes)
    host_frames = pinned.array(frames.shape, np.uint8)
    host_frames[...] = frames
    d_frames = cuda.DeviceBuffer(frames.nbytes)
    d_net32, d_net16 = cuda.DeviceBuffer(4 * net_elems), cuda.DeviceBuffer(2 * net_elems)
    d_maps = cuda.DeviceBuffer(maps.nbytes)
    d_full = cuda.DeviceBuffer(4 * n * h * w)
    d_over = cuda.DeviceBuffer(frames.nbytes)
    pinned_full = cuda.PinnedBuffer(4 * n * h * w)
    d_frames.copy_from_host(host_frames, stream)
    d_maps.copy_from_host(maps, stream)
    frame_bytes = h * w * 3
    images = [DeviceImage(d_frames.ptr + i * frame_bytes, h, w) for i in range(n)]
    sizes = [(h, w)] * n
    maps_out = [d_full.ptr + i * h * w * 4 for i in range(n)]
    overlays_out = [d_over.ptr + i * frame_bytes for i in range(n)]
    cudart = cuda.runtime()
    d_copy_src, d_copy_dst = cuda.DeviceBuffer(copy_bytes), cuda.DeviceBuffer(copy_bytes)
    # native analysis: every frame's tiles, and a tile map per tile
    per = tiles_per_frame(frames, contract)
    tile_shape = (n * per, 3, contract.height, contract.width)
    tile_maps = make_tile_maps(frames, contract, 0) if tile_maps is None else tile_maps
    d_tiles32, d_tiles16 = cuda.DeviceBuffer(4 * int(np.prod(tile_shape))), cuda.DeviceBuffer(2 * int(np.prod(tile_shape)))
    d_tile_maps = cuda.DeviceBuffer(tile_maps.nbytes)
    d_tile_maps.copy_from_host(tile_maps, stream)

    stages = {
        "copy_frames_h2d": lambda: cuda.check(
            cudart.cudaMemcpyAsync(d_frames.ptr, pinned.ptr, frames.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream.handle), "cudaMemcpyAsync"
        ),
        "preprocess_fp32": lambda: lib.preprocess_device(images, "BGR", contract, d_net32.ptr, dtype=np.float32, stream=stream),
        "preprocess_fp16": lambda: lib.preprocess_device(images, "BGR", contract, d_net16.ptr, dtype=np.float16, stream=stream),
        "upsample": lambda: lib.upsample_device(d_maps.ptr, (contract.height, contract.width), sizes, maps_out, stream=stream),
        "upsample+overlay": lambda: lib.postprocess_device(
            d_maps.ptr, (contract.height, contract.width), sizes, maps_out=maps_out, images=images, overlays_out=overlays_out, lut=lut, stream=stream
        ),
        "tiles_fp32": lambda: lib.tiles_device(images, "BGR", contract, d_tiles32.ptr, dtype=np.float32, stream=stream),
        "tiles_fp16": lambda: lib.tiles_device(images, "BGR", contract, d_tiles16.ptr, dtype=np.float16, stream=stream),
        "stitch": lambda: lib.stitch_device(
            d_tile_maps.ptr, contract.size, sizes, contract.tile_overlap, maps_out, window=contract.tile_window, stream=stream
        ),
        "copy_maps_d2h": lambda: cuda.check(
            cudart.cudaMemcpyAsync(pinned_full.ptr, d_full.ptr, 4 * n * h * w, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream.handle), "cudaMemcpyAsync"
        ),
        "device_copy": lambda: cuda.check(
            cudart.cudaMemcpyAsync(d_copy_dst.ptr, d_copy_src.ptr, copy_bytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream.handle), "cudaMemcpyAsync"
        ),
    }
    start, end = cuda.Event(), cuda.Event()
    rows = []
    for name, enqueue in stages.items():
        enqueue()  # warm-up (module load, first-touch)
        stream.synchronize()
        times = []
        for _ in range(repeats):
            start.record(stream)
            enqueue()
            end.record(stream)
            times.append(cuda.Event.elapsed_ms(start, end))
        rows.append({"stage": name, "path": "native cuda", "ms": statistics.median(times)})
    rows[-1]["bytes"] = 2 * copy_bytes  # the device copy: read + write

    # Agreement: the GPU results, copied back, against the CPU implementation on the first frames.
    k = min(2, n)
    lib.preprocess_device(images, "BGR", contract, d_net32.ptr, stream=stream)
    lib.preprocess_device(images, "BGR", contract, d_net16.ptr, dtype=np.float16, stream=stream)
    lib.postprocess_device(d_maps.ptr, (contract.height, contract.width), sizes, maps_out=maps_out, images=images, overlays_out=overlays_out, lut=lut, stream=stream)
    net32 = d_net32.copy_to_host(np.empty(net_shape, np.float32), stream)
    net16 = d_net16.copy_to_host(np.empty(net_shape, np.float16), stream)
    full = d_full.copy_to_host(np.empty((n, h, w), np.float32), stream)
    over = d_over.copy_to_host(np.empty(frames.shape, np.uint8), stream)
    lib.tiles_device(images, "BGR", contract, d_tiles32.ptr, stream=stream)
    lib.tiles_device(images, "BGR", contract, d_tiles16.ptr, dtype=np.float16, stream=stream)
    lib.stitch_device(d_tile_maps.ptr, contract.size, sizes, contract.tile_overlap, maps_out, window=contract.tile_window, stream=stream)
    tiles32 = d_tiles32.copy_to_host(np.empty((k * per, *tile_shape[1:]), np.float32), stream)  # the first k frames' tiles
    tiles16 = d_tiles16.copy_to_host(np.empty((k * per, *tile_shape[1:]), np.float16), stream)
    stitched = d_full.copy_to_host(np.empty((k, h, w), np.float32), stream)
    stream.synchronize()
    cpu_stitched = lib.stitch_batch([tile_maps[i * per : (i + 1) * per] for i in range(k)], sizes[:k], contract.tile_overlap,
                                    window=contract.tile_window)
    cpu_full, cpu_over = lib.postprocess(maps[:k], images=list(frames[:k]), lut=lut)
    checks = {
        "cuda_equals_cpu_preprocess_fp32": bool(np.array_equal(net32[:k], lib.preprocess(list(frames[:k]), "BGR", contract))),
        "cuda_equals_cpu_preprocess_fp16": bool(
            np.array_equal(net16[:k], lib.preprocess(list(frames[:k]), "BGR", contract, np.empty((k, *net_shape[1:]), np.float16)))
        ),
        "cuda_equals_cpu_upsample": all(np.array_equal(full[i], cpu_full[i]) for i in range(k)),
        "cuda_equals_cpu_overlay": all(np.array_equal(over[i], cpu_over[i]) for i in range(k)),
        "cuda_equals_cpu_tiles_fp32": bool(np.array_equal(tiles32, lib.tiles(list(frames[:k]), "BGR", contract))),
        "cuda_equals_cpu_tiles_fp16": bool(
            np.array_equal(tiles16, lib.tiles(list(frames[:k]), "BGR", contract, np.empty(tiles16.shape, np.float16)))
        ),
        "cuda_equals_cpu_stitch": all(np.array_equal(stitched[i], cpu_stitched[i]) for i in range(k)),
        "tiles_per_frame": per,
        "device": cuda.device_properties(0),
    }
    for resource in (d_copy_src, d_copy_dst, d_tiles32, d_tiles16, d_tile_maps, d_frames, d_net32, d_net16, d_maps, d_full, d_over,
                     pinned_full, pinned, start, end, stream):
        resource.close()
    return rows, checks


def add_throughput(rows: list[dict], bytes_by_stage: dict[str, int], batch: int) -> None:
    for row in rows:
        row["ms_per_frame"] = row["ms"] / batch
        nbytes = row.get("bytes", bytes_by_stage.get(row["stage"]))
        if row["stage"] == "device_copy":
            row["ms_per_frame"] = None
        row["gb_per_s"] = nbytes / row["ms"] / 1e6 if nbytes and row["ms"] > 0 else None


def print_table(rows: list[dict]) -> None:
    print(f"{'stage':<18} {'path':<34} {'ms/batch':>10} {'ms/frame':>9} {'GB/s':>8}")
    for r in rows:
        per_frame = "" if r["ms_per_frame"] is None else f"{r['ms_per_frame']:.3f}"
        gbs = "" if r["gb_per_s"] is None else f"{r['gb_per_s']:.1f}"
        print(f"{r['stage']:<18} {r['path']:<34} {r['ms']:>10.3f} {per_frame:>9} {gbs:>8}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakelocator.benchmarks.kernels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "both"], default="both")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--threads", default=f"1,{os.cpu_count() or 1}", help="CPU thread counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)

    from fakelocator.runtime import native

    try:
        lib = native.require()
        contract = Preprocessing()
        frames, maps = make_inputs(args.batch, args.height, args.width, contract, args.seed)
        lut = jet_lut()
        threads = sorted({int(t) for t in args.threads.split(",")})
        results = {
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, "-m", "fakelocator.benchmarks.kernels", *(argv if argv is not None else sys.argv[1:])]),
            "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count()},
            "library": str(lib.path),
            "batch": args.batch,
            "frame": [args.height, args.width],
            "network_input": list(contract.size),
            "checks": check_cpu(lib, frames, maps, contract, lut),
            "rows": [],
        }
        if args.device in ("cpu", "both"):
            results["rows"] += bench_cpu(lib, frames, maps, contract, lut, threads, args.repeats)
        if args.device in ("cuda", "both"):
            try:
                rows, checks = bench_cuda(lib, frames, maps, contract, lut, args.repeats)
            except FakeLocatorError as e:
                if args.device == "cuda":
                    raise
                print(f"cuda: skipped ({e})", file=sys.stderr)
            else:
                results["rows"] += rows
                results["checks"].update(checks)
    except FakeLocatorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    add_throughput(results["rows"], stage_bytes(frames, maps, contract), args.batch)
    print(json.dumps(results["checks"], indent=1))
    print_table(results["rows"])
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.output}")
    disagree = [k for k, v in results["checks"].items() if k.startswith("cuda_equals") and not v]
    if disagree:
        print(f"error: the CUDA and CPU results differ: {', '.join(disagree)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
