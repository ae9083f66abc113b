"""Benchmark of the native pre/post-processing kernels: CPU threads, CUDA, and the OpenCV/numpy path.

A seeded batch of frames (default 64 × 1080p, BGR) goes through

- preprocess: frames → (N, 3, 224, 224) network input (fp32 and, on the GPU, fp16);
- upsample: (N, 1, 224, 224) maps → full-resolution float32 maps;
- overlay: the same, fused with the colour-map overlay;

on each requested path, after checking that the paths agree (CUDA == CPU bit for bit, CPU vs the
Python contract within 1e-5). For ``native`` analysis, one image at each of ``--native-sizes``
(default 1080p and 4K) goes through

- tiles: image → its normalized 224² tiles (overlap 32), numpy (the runtime's fallback) and C++;
- stitch: its tile maps → the full-resolution map, float32 or uint8 levels, into reused buffers;
- map → PNG: the whole way from network output to 8-bit PNG bytes, float32 (the map, then
  ``encode_map``'s quantization and encoding) against uint8 (levels straight from the kernel, then
  encoding), for ``native`` (stitch) and ``fit`` (upsample; "fresh" is today's runtime: a new float32
  map per image);

with smooth synthetic maps (PNG encoding time depends on content; noise would inflate it). Times are medians over ``--repeats`` runs after a warm-up; on the GPU
they come from CUDA events on one stream, and the device's own copy bandwidth (a device-to-device
``cudaMemcpyAsync``) is measured alongside, so that "GB/s" can be read against what the memory
system delivers. GB/s counts nominal bytes: every input byte once plus every output byte once,
read and write both counted, as for the copy.

    python -m fakelocator.benchmarks.kernels --device cpu --batch 8 --threads 1,2
    python -m fakelocator.benchmarks.kernels --device cpu --batch 8 --threads 1,2 --native-sizes 1080x1920,2160x3840
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
from dataclasses import replace
from pathlib import Path

import numpy as np

from fakelocator.contract import Preprocessing, to_full_resolution, to_network_input
from fakelocator.errors import FakeLocatorError


def jet_lut() -> np.ndarray:
    import cv2

    return cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, :]


def make_inputs(batch: int, height: int, width: int, contract: Preprocessing, seed: int):
    """(frames (N, H, W, 3) uint8 BGR, maps (N, 1, h, w) float32 in [0, 1])."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(batch, height, width, 3), dtype=np.uint8)
    maps = rng.random((batch, 1, contract.height, contract.width), dtype=np.float32)
    return frames, maps


def stage_bytes(frames: np.ndarray, maps: np.ndarray, contract: Preprocessing) -> dict[str, int]:
    n, h, w, _ = frames.shape
    net = n * 3 * contract.height * contract.width
    full = n * h * w
    return {
        "preprocess_fp32": frames.nbytes + 4 * net,
        "preprocess_fp16": frames.nbytes + 2 * net,
        "upsample": maps.nbytes + 4 * full,
        "upsample+overlay": maps.nbytes + 4 * full + 2 * frames.nbytes,  # + image in, overlay out
        "upsample_u8": maps.nbytes + full,
        "copy_frames_h2d": frames.nbytes,
        "copy_maps_d2h": 4 * full,
    }


def median_ms(fn, repeats: int, warmup: int = 1) -> float:
    return timed(fn, repeats, warmup)["ms"]


def timed(fn, repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median wall-clock ms and median CPU ms (this process, all its threads) of ``fn`` over ``repeats`` runs.

    On a machine shared with other jobs the wall time includes waiting for a core; the CPU time
    does not, so it is the steadier measure of the work a call costs (for a call on t threads it
    is the sum over them).
    """
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        wall.append((time.perf_counter() - w0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return {"ms": statistics.median(wall), "cpu_ms": statistics.median(cpu)}


def check_cpu(lib, frames, maps, contract, lut, samples: int = 2) -> dict[str, float]:
    """Max abs differences of the native CPU path from the Python contract on the first frames."""
    k = min(samples, len(frames))
    net = lib.preprocess(list(frames[:k]), "BGR", contract)
    pre = max(float(np.abs(net[i] - to_network_input(frames[i], contract, "BGR")).max()) for i in range(k))
    full = lib.postprocess(maps[:k], [f.shape[:2] for f in frames[:k]])[0]
    up = max(float(np.abs(full[i] - to_full_resolution(maps[i, 0], *frames[i].shape[:2])).max()) for i in range(k))
    return {"preprocess_max_abs_vs_contract": pre, "upsample_max_abs_vs_contract": up}


def bench_cpu(lib, frames, maps, contract, lut, threads: list[int], repeats: int) -> list[dict]:
    import cv2

    rows = []
    images = list(frames)
    sizes = [f.shape[:2] for f in frames]
    net32 = np.empty((len(frames), 3, contract.height, contract.width), np.float32)
    full = [np.empty(s, np.float32) for s in sizes]
    over = [np.empty((*s, 3), np.uint8) for s in sizes]
    for t in threads:
        path = f"native cpu, {t} thread{'s' if t > 1 else ''}"
        rows.append({"stage": "preprocess_fp32", "path": path, **timed(lambda: lib.preprocess(images, "BGR", contract, net32, threads=t), repeats)})
        rows.append({"stage": "upsample", "path": path, **timed(lambda: lib.postprocess(maps, sizes, maps_out=full, threads=t), repeats)})
        rows.append(
            {
                "stage": "upsample+overlay",
                "path": path,
                **timed(lambda: lib.postprocess(maps, images=images, lut=lut, maps_out=full, overlays_out=over, threads=t), repeats),
            }
        )

    def opencv_overlay():  # OpenCV's own colour map and blend: faster than numpy, rounding differs slightly
        for m, f in zip(maps, frames):
            full_map = to_full_resolution(m[0], *f.shape[:2])
            level = np.floor(full_map * np.float32(255) + np.float32(0.5)).astype(np.uint8)
            cv2.addWeighted(cv2.applyColorMap(level, cv2.COLORMAP_JET), 0.5, f, 0.5, 0.0)

    path = f"opencv/numpy (cv2 threads {cv2.getNumThreads()})"
    rows.append({"stage": "preprocess_fp32", "path": path, **timed(lambda: [to_network_input(f, contract, "BGR") for f in frames], repeats)})
    rows.append({"stage": "upsample", "path": path, **timed(lambda: [to_full_resolution(m[0], *s) for m, s in zip(maps, sizes)], repeats)})
    rows.append({"stage": "upsample+overlay", "path": path, **timed(opencv_overlay, repeats)})
    return rows


def smooth_map(height: int, width: int, rng) -> np.ndarray:
    """A float32 (height, width) map in [0, 1] that looks like a localization map: a few soft blobs."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    m = np.zeros((height, width), np.float32)
    for cy, cx, r in rng.uniform((0.1, 0.1, 0.05), (0.9, 0.9, 0.2), (4, 3)):
        m = np.maximum(m, np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r)))
    return m.astype(np.float32)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"1080x1920,2160x3840"`` → [(1080, 1920), (2160, 3840)] (height x width); "" → []."""
    sizes = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            h, w = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise FakeLocatorError(f"--native-sizes: {part!r} is not HEIGHTxWIDTH") from None
        if h < 1 or w < 1:
            raise FakeLocatorError(f"--native-sizes: {part!r} must be positive")
        sizes.append((h, w))
    return sizes


def bench_native_cpu(lib, sizes, threads: list[int], repeats: int, seed: int) -> tuple[list[dict], dict]:
    """Native analysis on the CPU, one image per size: tiles, stitching, and the map's way to PNG bytes.

    Rows are per image (``frames`` = 1); ``checks`` holds the agreement of the C++ path with
    ``fakelocator.tiling`` and of the uint8 levels with the float32 path's.
    """
    import cv2

    from fakelocator.runtime.outputs import encode_map
    from fakelocator.runtime.levels import map_levels
    from fakelocator.runtime.preprocess import NumpyPreprocessor
    from fakelocator.tiling import TileGrid, extract_tiles

    contract = Preprocessing(analysis="native")
    numpy_pre = NumpyPreprocessor()
    rng = np.random.default_rng(seed)
    rows, checks = [], {}

    def png(levels):
        ok, buf = cv2.imencode(".png", levels)
        if not ok:
            raise OSError("PNG encoding failed")
        return buf

    for h, w in sizes:
        tag = f"{h}x{w}"
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        grid = TileGrid.of(h, w, contract.height, contract.width, contract.tile_overlap)
        # Tile maps cut from a smooth full-resolution map (what a network's maps stitch back to).
        maps = np.ascontiguousarray(extract_tiles(smooth_map(h, w, rng)[:, :, None], grid)[..., 0])
        net_map = smooth_map(contract.height, contract.width, rng)  # for the fit rows
        tiles = np.empty((len(grid), 3, contract.height, contract.width), np.float32)
        f32, u8 = np.empty((h, w), np.float32), np.empty((h, w), np.uint8)
        tiles_bytes, stitch_bytes = image.nbytes + tiles.nbytes, maps.nbytes + f32.nbytes

        def row(stage, path, times, nbytes=None):
            rows.append({"stage": f"{stage} @{tag}", "path": path, **times, "frames": 1, "bytes": nbytes, "tiles": len(grid)})

        # agreement (on this very image)
        ref_tiles = numpy_pre.tiles(image, grid, "BGR", contract, np.empty_like(tiles))
        ref_map = numpy_pre.stitch(maps, grid, "linear")
        checks[f"tiles_max_abs_vs_numpy @{tag}"] = float(np.abs(lib.tiles([image], "BGR", contract, tiles) - ref_tiles).max())
        checks[f"stitch_max_abs_vs_numpy @{tag}"] = float(np.abs(lib.stitch(maps, (h, w), contract.tile_overlap, f32) - ref_map).max())
        checks[f"stitch_u8_max_level_diff_vs_float32 @{tag}"] = int(
            np.abs(lib.stitch(maps, (h, w), contract.tile_overlap, u8, dtype=np.uint8).astype(np.int16) - map_levels(ref_map)).max())
        checks[f"upsample_u8_max_level_diff_vs_contract @{tag}"] = int(
            np.abs(lib.upsample_u8(net_map, h, w, u8).astype(np.int16) - map_levels(to_full_resolution(net_map, h, w))).max())

        row("tiles_fp32", "numpy", timed(lambda: numpy_pre.tiles(image, grid, "BGR", contract, tiles), repeats), tiles_bytes)
        row("stitch_fp32", "numpy", timed(lambda: numpy_pre.stitch(maps, grid, "linear", f32), repeats), stitch_bytes)
        row("stitch_u8", "numpy", timed(lambda: numpy_pre.stitch_u8(maps, grid, "linear", u8), repeats), maps.nbytes + u8.nbytes)
        for t in threads:
            path = f"native cpu, {t} thread{'s' if t > 1 else ''}"
            row("tiles_fp32", path, timed(lambda: lib.tiles([image], "BGR", contract, tiles, threads=t), repeats), tiles_bytes)
            row("stitch_fp32", path, timed(lambda: lib.stitch(maps, (h, w), contract.tile_overlap, f32, threads=t), repeats), stitch_bytes)
            row("stitch_u8", path, timed(lambda: lib.stitch(maps, (h, w), contract.tile_overlap, u8, dtype=np.uint8, threads=t), repeats),
                maps.nbytes + u8.nbytes)
        # The map's whole way to PNG bytes. float32: map, then encode_map (quantize + encode), as the
        # runtime writes maps today; uint8: levels from the kernel, then the same PNG encoding.
        t = max(threads)
        path = f"native cpu, {t} thread{'s' if t > 1 else ''}"
        row("png_encode_only", f"opencv (cv2 threads {cv2.getNumThreads()})", timed(lambda: png(u8), repeats))
        row("native_map_to_png_f32", "numpy stitch (reused) + encode_map",
            timed(lambda: encode_map(numpy_pre.stitch(maps, grid, "linear", f32)), repeats))
        row("native_map_to_png_f32", f"{path} (reused) + encode_map",
            timed(lambda: encode_map(lib.stitch(maps, (h, w), contract.tile_overlap, f32, threads=t)), repeats))
        row("native_map_to_png_u8", f"{path} (reused) + png",
            timed(lambda: png(lib.stitch(maps, (h, w), contract.tile_overlap, u8, dtype=np.uint8, threads=t)), repeats))
        row("fit_map_to_png_f32", "opencv upsample (fresh) + encode_map",
            timed(lambda: encode_map(to_full_resolution(net_map, h, w)), repeats))
        row("fit_map_to_png_f32", f"{path} (reused) + encode_map",
            timed(lambda: encode_map(lib.upsample(net_map, h, w, f32, threads=t)), repeats))
        row("fit_map_to_png_u8", f"{path} (reused) + png",
            timed(lambda: png(lib.upsample_u8(net_map, h, w, u8, threads=t)), repeats))
    return rows, checks


def bench_cuda(lib, frames, maps, contract, lut, repeats: int, copy_bytes: int = 1 << 30) -> tuple[list[dict], dict]:
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
    d_levels = cuda.DeviceBuffer(n * h * w)
    levels_out = [d_levels.ptr + i * h * w for i in range(n)]
    # native analysis: the first kn frames' tiles (kn <= 8 keeps 4K batches' tiles within a few GB)
    kn = min(n, 8)
    overlap = min(32, min(contract.size) // 2 - 1)
    native_contract = replace(contract, analysis="native", tile_overlap=overlap)
    n_tiles = kn * lib.tile_count(h, w, contract.size, overlap)
    tile_elems = n_tiles * 3 * contract.height * contract.width
    d_tiles32, d_tiles16 = cuda.DeviceBuffer(4 * tile_elems), cuda.DeviceBuffer(2 * tile_elems)
    tile_maps = np.random.default_rng(1).random((n_tiles, 1, contract.height, contract.width), dtype=np.float32)
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
        "copy_maps_d2h": lambda: cuda.check(
            cudart.cudaMemcpyAsync(pinned_full.ptr, d_full.ptr, 4 * n * h * w, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream.handle), "cudaMemcpyAsync"
        ),
        "upsample_u8": lambda: lib.postprocess_device(d_maps.ptr, (contract.height, contract.width), sizes, levels_out=levels_out, stream=stream),
        # native analysis on the first kn frames: their tiles, and tile maps stitched back
        "tiles_fp32": lambda: lib.tiles_device(images[:kn], "BGR", native_contract, d_tiles32.ptr, stream=stream),
        "tiles_fp16": lambda: lib.tiles_device(images[:kn], "BGR", native_contract, d_tiles16.ptr, dtype=np.float16, stream=stream),
        "stitch_fp32": lambda: lib.stitch_device(d_tile_maps.ptr, contract.size, sizes[:kn], overlap, maps_out[:kn], stream=stream),
        "stitch_u8": lambda: lib.stitch_device(d_tile_maps.ptr, contract.size, sizes[:kn], overlap, levels_out[:kn], dtype=np.uint8, stream=stream),
        "device_copy": lambda: cuda.check(
            cudart.cudaMemcpyAsync(d_copy_dst.ptr, d_copy_src.ptr, copy_bytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream.handle), "cudaMemcpyAsync"
        ),
    }
    per_k = {"tiles_fp32": (kn, 4), "tiles_fp16": (kn, 2), "stitch_fp32": (kn, 4), "stitch_u8": (kn, 1)}
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
        if name in per_k:  # kn frames; bytes: frames in + tiles out, or tile maps in + maps out
            frames_k, itemsize = per_k[name]
            moved = frames_k * h * w * 3 + itemsize * tile_elems if name.startswith("tiles") else tile_maps.nbytes + itemsize * frames_k * h * w
            rows[-1].update(frames=frames_k, bytes=moved, tiles=n_tiles)
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
    lib.postprocess_device(d_maps.ptr, (contract.height, contract.width), sizes, levels_out=levels_out, stream=stream)
    levels = d_levels.copy_to_host(np.empty((n, h, w), np.uint8), stream)
    lib.tiles_device(images[:kn], "BGR", native_contract, d_tiles32.ptr, stream=stream)
    lib.tiles_device(images[:kn], "BGR", native_contract, d_tiles16.ptr, dtype=np.float16, stream=stream)
    tiles32 = d_tiles32.copy_to_host(np.empty((n_tiles, 3, *contract.size), np.float32), stream)
    tiles16 = d_tiles16.copy_to_host(np.empty((n_tiles, 3, *contract.size), np.float16), stream)
    lib.stitch_device(d_tile_maps.ptr, contract.size, sizes[:kn], overlap, maps_out[:kn], stream=stream)
    stitched = d_full.copy_to_host(np.empty((n, h, w), np.float32), stream)[:kn]
    lib.stitch_device(d_tile_maps.ptr, contract.size, sizes[:kn], overlap, levels_out[:kn], dtype=np.uint8, stream=stream)
    stitched_u8 = d_levels.copy_to_host(np.empty((n, h, w), np.uint8), stream)[:kn]
    stream.synchronize()
    per_frame_tiles = n_tiles // kn
    cpu_tiles32 = lib.tiles(list(frames[:kn]), "BGR", native_contract)
    cpu_stitched = [lib.stitch(tile_maps[i * per_frame_tiles:(i + 1) * per_frame_tiles], (h, w), overlap) for i in range(kn)]
    cpu_stitched_u8 = [lib.stitch(tile_maps[i * per_frame_tiles:(i + 1) * per_frame_tiles], (h, w), overlap, dtype=np.uint8) for i in range(kn)]
    cpu_full, cpu_over = lib.postprocess(maps[:k], images=list(frames[:k]), lut=lut)
    checks = {
        "cuda_equals_cpu_preprocess_fp32": bool(np.array_equal(net32[:k], lib.preprocess(list(frames[:k]), "BGR", contract))),
        "cuda_equals_cpu_preprocess_fp16": bool(
            np.array_equal(net16[:k], lib.preprocess(list(frames[:k]), "BGR", contract, np.empty((k, *net_shape[1:]), np.float16)))
        ),
        "cuda_equals_cpu_upsample": all(np.array_equal(full[i], cpu_full[i]) for i in range(k)),
        "cuda_equals_cpu_overlay": all(np.array_equal(over[i], cpu_over[i]) for i in range(k)),
        "cuda_equals_cpu_levels": all(np.array_equal(levels[i], lib.upsample_u8(maps[i, 0], h, w)) for i in range(k)),
        "cuda_equals_cpu_tiles_fp32": bool(np.array_equal(tiles32, cpu_tiles32)),
        "cuda_equals_cpu_tiles_fp16": bool(np.array_equal(tiles16, lib.tiles(list(frames[:kn]), "BGR", native_contract, np.empty(tiles16.shape, np.float16)))),
        "cuda_equals_cpu_stitch_fp32": all(np.array_equal(a, b, equal_nan=True) for a, b in zip(stitched, cpu_stitched)),
        "cuda_equals_cpu_stitch_u8": all(np.array_equal(a, b) for a, b in zip(stitched_u8, cpu_stitched_u8)),
        "device": cuda.device_properties(0),
    }
    for resource in (d_levels, d_tiles32, d_tiles16, d_tile_maps, d_copy_src, d_copy_dst, d_frames, d_net32, d_net16, d_maps, d_full, d_over, pinned_full, pinned, start, end, stream):
        resource.close()
    return rows, checks


def add_throughput(rows: list[dict], bytes_by_stage: dict[str, int], batch: int) -> None:
    for row in rows:
        row["ms_per_frame"] = row["ms"] / row.get("frames", batch)
        nbytes = row.get("bytes", bytes_by_stage.get(row["stage"]))
        if row["stage"] == "device_copy":
            row["ms_per_frame"] = None
        row["gb_per_s"] = nbytes / row["ms"] / 1e6 if nbytes and row["ms"] > 0 else None


def print_table(rows: list[dict]) -> None:
    print(f"{'stage':<34} {'path':<44} {'ms/call':>10} {'cpu-ms':>9} {'ms/frame':>9} {'GB/s':>8}")
    for r in rows:
        per_frame = "" if r["ms_per_frame"] is None else f"{r['ms_per_frame']:.3f}"
        gbs = "" if r["gb_per_s"] is None else f"{r['gb_per_s']:.1f}"
        cpu = f"{r['cpu_ms']:.3f}" if r.get("cpu_ms") is not None else ""
        print(f"{r['stage']:<34} {r['path']:<44} {r['ms']:>10.3f} {cpu:>9} {per_frame:>9} {gbs:>8}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakelocator.benchmarks.kernels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "both"], default="both",
                        help="which kernels to time: the C++ CPU ones, the CUDA ones, or both (default both; "
                        "cuda needs a GPU and the library built with CUDA)")
    parser.add_argument("--batch", type=int, default=64, metavar="N", help="frames per kernel call (default 64)")
    parser.add_argument("--height", type=int, default=1080, metavar="PX", help="frame height in pixels (default 1080)")
    parser.add_argument("--width", type=int, default=1920, metavar="PX", help="frame width in pixels (default 1920)")
    parser.add_argument("--threads", default=f"1,{os.cpu_count() or 1}", metavar="N,N,...",
                        help=f"CPU thread counts to time, comma-separated (default 1,{os.cpu_count() or 1})")
    parser.add_argument("--repeats", type=int, default=10, metavar="N", help="timed calls per kernel; the median is reported (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated frames and maps (default 0)")
    parser.add_argument("--native-sizes", default="1080x1920,2160x3840",
                        help="image sizes (HEIGHTxWIDTH, comma-separated) for the native-analysis CPU stages; '' skips them")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the results as JSON here (default: print only)")
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
            rows, checks = bench_native_cpu(lib, parse_sizes(args.native_sizes), threads, args.repeats, args.seed)
            results["rows"] += rows
            results["checks"].update(checks)
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
