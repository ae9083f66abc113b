"""Check and time the GPU pipeline end to end, with a stand-in network made of device copies.

Everything of ``fakelocator.runtime.device_pipeline`` runs for real — the pinned staging buffer,
the one upload per batch, the preprocess kernel writing into the "input binding", the postprocess
kernel reading the "map binding", the one download, two batches in flight on three streams, the
CUDA-event stage timings — around ``CopyNet``, which stands in for the network: its "inference"
is device-to-device copies (map = the normalized first channel, score = that map's first pixel,
features = each channel's first pixel). So this needs a CUDA GPU, cuda-python and the native
library built with CUDA, but neither TensorRT, onnxruntime-gpu nor torch; it verifies the whole
device path except the network itself.

It first checks that the device path's results equal the host path's bit for bit (both run the
same arithmetic, the host path with the native CPU kernels), then times ``Locator.locate`` over
seeded decoded frames on both paths: wall time per frame, and the device path's stages (ms per
batch; the copies also in GB/s).

    python -m fakelocator.benchmarks.device_pipeline --batch 64 --height 1080 --width 1920 \\
        --output runs/bench/device-pipeline-h100.json
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np

from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.backends.base import Backend, DeviceIO, DeviceTensor, ModelInfo

STAGES = ("pack", "h2d", "preprocess", "infer", "postprocess", "d2h", "finish")


def _cuda():
    return importlib.import_module("fakelocator.runtime.cuda")


class CopyNetIO(DeviceIO):
    """CopyNet's device buffers; :meth:`run` enqueues its copies on the caller's stream."""

    def __init__(self, contract: Preprocessing, max_batch: int, device_index: int = 0):
        cuda = _cuda()
        cuda.set_device(device_index)
        self.device_index, self.max_batch, self.fixed_batch = device_index, int(max_batch), None
        self.input_dtype = np.dtype(np.float32)
        self.map_size = contract.size
        self.feature_size = 3
        h, w = contract.size
        self._plane = h * w * 4
        self._buffers = {}
        try:
            for name, nbytes in (("image", 3 * self._plane), ("map", self._plane), ("score", 4), ("features", 12)):
                self._buffers[name] = cuda.DeviceBuffer(self.max_batch * nbytes)
            self.stream = cuda.Stream()
        except BaseException:
            self.close()
            raise
        self.lock = threading.Lock()

    def input(self, n: int) -> DeviceTensor:
        return DeviceTensor(self._buffers["image"].ptr, (self.batch_rows(n), 3, *self.map_size), self.input_dtype)

    def run(self, n: int, stream) -> dict[str, DeviceTensor]:
        cuda, b, plane = _cuda(), self._buffers, self._plane
        rows = self.batch_rows(n)
        for r in range(rows):
            x = b["image"].ptr + r * 3 * plane  # (3, h, w) of row r
            cuda.memcpy_async(b["map"].ptr + r * plane, x, plane, "d2d", stream)
            cuda.memcpy_async(b["score"].ptr + 4 * r, x, 4, "d2d", stream)
            for c in range(3):
                cuda.memcpy_async(b["features"].ptr + 4 * (3 * r + c), x + c * plane, 4, "d2d", stream)
        f32 = np.dtype(np.float32)
        return {
            "map": DeviceTensor(b["map"].ptr, (rows, 1, *self.map_size), f32),
            "score": DeviceTensor(b["score"].ptr, (rows, 1), f32),
            "features": DeviceTensor(b["features"].ptr, (rows, 3), f32),
        }

    def close(self) -> None:
        self.release_owned()


class CopyNet(Backend):
    """A stand-in network: map = the normalized first channel, score = its first pixel, features =
    each channel's first pixel. ``infer`` computes that on the host, ``device_io`` on the device."""

    name = "copynet"

    def __init__(self, contract: Preprocessing, device: str = "cuda:0"):
        self.device = device
        self.info = ModelInfo(path="<copynet>", format="onnx", preprocessing=contract)

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        x = np.asarray(batch, np.float32)  # (N, 3, h, w)
        return {"map": x[:, :1].copy(), "score": x[:, 0, 0, :1].copy(), "features": x[:, :, 0, 0].copy()}

    def device_io(self, batch_size: int) -> CopyNetIO:
        return CopyNetIO(self.info.preprocessing, batch_size, int(self.device.split(":", 1)[1]))


def make_frames(count: int, height: int, width: int, seed: int) -> list[np.ndarray]:
    """Seeded BGR frames: smooth gradients plus noise (so maps are not flat)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = ((xx * 255 // max(1, width - 1) + yy * 255 // max(1, height - 1)) // 2).astype(np.uint8)
    frames = []
    for _ in range(count):
        frame = np.repeat(base[:, :, None], 3, axis=2)
        frame ^= rng.integers(0, 32, size=frame.shape, dtype=np.uint8)
        frames.append(frame)
    return frames


def compare(device_results, host_results) -> dict:
    """Largest differences between the two paths' maps, scores and features (0 means bit for bit)."""
    maps = max(float(np.max(np.abs(a.map - b.map))) for a, b in zip(device_results, host_results))
    scores = max(abs(a.score - b.score) for a, b in zip(device_results, host_results))
    shapes = all(a.map.shape == b.map.shape == (b.height, b.width) for a, b in zip(device_results, host_results))
    return {"map_max_abs": maps, "score_max_abs": scores, "shapes_match": shapes, "identical": shapes and maps == 0.0 and scores == 0.0}


def time_locator(locator, frames: list[np.ndarray], rounds: int) -> dict:
    locator.locate(frames[: locator.batch_size])  # warm-up: buffers, kernels, threads
    walls, stages = [], {}
    for _ in range(rounds):
        start = time.perf_counter()
        results = locator.locate(frames)
        walls.append(time.perf_counter() - start)
        for r in results:
            for stage, ms in r.timings.items():
                stages[stage] = stages.get(stage, 0.0) + ms
    batches = rounds * -(-len(frames) // locator.batch_size)
    return {
        "wall_ms_per_frame": 1e3 * float(np.median(walls)) / len(frames),
        "frames_per_s": len(frames) / float(np.median(walls)),
        "stage_ms_per_batch": {k: v / batches for k, v in stages.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fakelocator.benchmarks.device_pipeline", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64, metavar="N", help="network inputs per inference call (default 64)")
    p.add_argument("--frames", type=int, default=None, help="frames per round (default: 2 batches)")
    p.add_argument("--height", type=int, default=1080, metavar="PX", help="frame height in pixels (default 1080)")
    p.add_argument("--width", type=int, default=1920, metavar="PX", help="frame width in pixels (default 1920)")
    p.add_argument("--rounds", type=int, default=3, metavar="N", help="timed rounds per pipeline; the median is reported (default 3)")
    p.add_argument("--workers", type=int, default=None, help="the locators' host threads (default: theirs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated frames (default 0)")
    p.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args(argv)

    from fakelocator.runtime import Locator

    contract = Preprocessing()
    frames = make_frames(args.frames or 2 * args.batch, args.height, args.width, args.seed)
    backend = CopyNet(contract)
    try:
        on_device = Locator(backend, batch_size=args.batch, pipeline="device", workers=args.workers)
        on_host = Locator(backend, batch_size=args.batch, pipeline="host", preprocessor="native", workers=args.workers)
    except FakeLocatorError as e:
        print(f"device_pipeline: {e}", file=sys.stderr)
        return 2
    check = compare(on_device.locate(frames[: args.batch]), on_host.locate(frames[: args.batch]))
    print(f"device path vs host path: {check}")
    if not check["identical"]:
        print("device_pipeline: the GPU path differs from the host path", file=sys.stderr)

    device = time_locator(on_device, frames, args.rounds)
    host = time_locator(on_host, frames, args.rounds)
    stage = device["stage_ms_per_batch"]
    frame_bytes = args.batch * args.height * args.width * 3
    copies = {
        "h2d_gb_per_s": frame_bytes / (stage["h2d"] * 1e6) if stage.get("h2d") else None,
        "d2h_gb_per_s": 4 * frame_bytes / 3 / (stage["d2h"] * 1e6) if stage.get("d2h") else None,
    }
    props = _cuda().device_properties(0)
    record = {
        "benchmark": "device_pipeline",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m fakelocator.benchmarks.device_pipeline", *(argv if argv is not None else sys.argv[1:])]),
        "device": props.get("name"),
        "host": platform.node(),
        "batch": args.batch, "frames": len(frames), "height": args.height, "width": args.width, "rounds": args.rounds,
        "check": check, "device_path": device, "host_path": host, "copies": copies,
    }
    print(f"{'stage':<12} {'device ms/batch':>16}")
    for name in STAGES:
        if name in stage:
            print(f"{name:<12} {stage[name]:>16.2f}")
    print(f"h2d {copies['h2d_gb_per_s'] or 0:.1f} GB/s, d2h {copies['d2h_gb_per_s'] or 0:.1f} GB/s")
    print(f"wall per frame: device path {device['wall_ms_per_frame']:.2f} ms, host path {host['wall_ms_per_frame']:.2f} ms")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(record, indent=2))
        print(f"written: {args.output}")
    on_device.close()
    on_host.close()
    return 0 if check["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
