"""Each stage of the runtime, timed on its own with the runtime's own code.

One iteration takes one batch of encoded images through the stages one after the other, on one
thread (the stage's own internal threads aside: ONNX Runtime's, the native library's), and records
each stage's milliseconds for the whole batch:

| stage | the runtime code it runs |
|---|---|
| decode | ``runtime.decode.load_image`` per image (what ``Locator.locate_iter``'s decoding threads call) |
| preprocess | ``Preprocessor.preprocess`` on the batch (native or numpy, as the locator chose) |
| h2d | host → device copy of the network input (GPU backends; see ``infer_stages``) |
| infer | the network (GPU: between CUDA events or synchronized clocks) |
| d2h | device → host copy of the outputs |
| upsample | ``Preprocessor.upsample`` + ``results.bbox_of`` per image (what ``Runner._finish`` does) |
| write | ``outputs.encode_map`` (8-bit PNG) + ``outputs.write_atomic`` per image (trt-locate's writer) |

In ``native`` analysis (``NATIVE_STAGES``) ``tile`` replaces preprocess (``Preprocessor.tiles``:
the batch's images cut into tiles, packed ``batch`` tiles per inference call as the pipeline packs
them) and ``stitch`` replaces upsample (``Preprocessor.stitch`` + tile-score pooling + ``bbox_of``
per image); infer is the sum of the batch's inference calls.

``infer_call`` is the whole ``Backend.infer`` call, as the pipeline sees it (h2d + infer + d2h +
the backend's own host work). On the CPU there is no copy: h2d and d2h are recorded as not
applicable (None), never as zeros.

How the GPU backends are split (each mirrors its backend's ``infer`` step by step, with timing
marks between the steps; outputs are returned so that callers can check them):

- tensorrt: CUDA events on the backend's own stream around the pinned staging + async upload,
  ``execute_async_v3``, and the async downloads (+ the host copy out of the pinned buffers);
- torch: ``torch.cuda.Event``s on the current stream around ``.to(device)``, the CUDA-graph replay
  (or eager forward) and ``.cpu()``;
- onnxruntime with the CUDA provider: I/O binding, each step synchronous, timed with the host
  clock: ``OrtValue.ortvalue_from_numpy(x, "cuda")``, ``run_with_iobinding``, ``copy_outputs_to_cpu``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

from fakelocator.benchmarks.stats import summarize
from fakelocator.model_io import INPUT_NAME
from fakelocator.runtime.backends.base import Backend
from fakelocator.runtime.decode import load_image
from fakelocator.runtime.outputs import encode_map, write_atomic
from fakelocator.runtime.pipeline import sub_grids
from fakelocator.runtime.preprocess import stitch_of, tiles_of
from fakelocator.runtime.results import BBOX_LEVEL, bbox_of
from fakelocator.tiling import TileGrid, pool_scores

STAGES = ("decode", "preprocess", "h2d", "infer", "d2h", "upsample", "write")
PRE_POST = ("preprocess", "upsample")
NATIVE_STAGES = ("decode", "tile", "h2d", "infer", "d2h", "stitch", "write")
NATIVE_PRE_POST = ("tile", "stitch")


def stages_for(analysis: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(stages, pre/post stages) of a row of this analysis ("fit" or "native")."""
    return (NATIVE_STAGES, NATIVE_PRE_POST) if analysis == "native" else (STAGES, PRE_POST)
Clock = Callable[[], float]


def _ms(t0: float, t1: float) -> float:
    return (t1 - t0) * 1000


class HostEvent:
    """A CUDA event's interface on the host clock, for tests: ``record``, ``synchronize``,
    ``elapsed_time`` (torch's spelling) and ``elapsed_ms`` (``fakelocator.runtime.cuda.Event``'s)."""

    def __init__(self, clock: Clock = time.perf_counter):
        self._clock = clock
        self.t = None

    def record(self, stream=None) -> None:
        self.t = self._clock()

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: "HostEvent") -> float:
        return _ms(self.t, end.t)

    @staticmethod
    def elapsed_ms(start: "HostEvent", end: "HostEvent") -> float:
        return start.elapsed_time(end)


def infer_stages(
    backend: Backend, batch: np.ndarray, *, clock: Clock = time.perf_counter
) -> tuple[dict[str, np.ndarray], dict[str, float | None]]:
    """Run one batch through ``backend``; (outputs, {"h2d", "infer", "d2h", "infer_call"} in ms or None)."""
    if backend.device == "cpu":
        t0 = clock()
        out = backend.infer(batch)
        ms = _ms(t0, clock())
        return out, {"h2d": None, "infer": ms, "d2h": None, "infer_call": ms}
    if backend.name == "tensorrt":
        from fakelocator.runtime import cuda

        out, split = tensorrt_split(backend, batch, event=cuda.Event, clock=clock)
    elif backend.name == "torch":
        import torch

        out, split = torch_split(backend, batch, event=lambda: torch.cuda.Event(enable_timing=True))
    elif backend.name == "onnxruntime":
        index = int(backend.device.split(":", 1)[1]) if ":" in backend.device else 0
        out, split = onnxruntime_split(backend, batch, device_type="cuda", device_id=index, clock=clock)
    else:  # an unknown GPU backend: only the whole call can be timed
        t0 = clock()
        out = backend.infer(batch)
        return out, {"h2d": None, "infer": _ms(t0, clock()), "d2h": None, "infer_call": _ms(t0, clock())}
    t0 = clock()
    backend.infer(batch)  # the whole call, as the pipeline makes it (it synchronizes before returning)
    split["infer_call"] = _ms(t0, clock())
    return out, split


def tensorrt_split(backend, batch: np.ndarray, *, event, clock: Clock = time.perf_counter):
    """``TensorRTBackend.infer``'s own steps (``upload``, ``execute``, ``download``) with events between.

    ``event``: makes an event (``fakelocator.runtime.cuda.Event``: ``record(stream)``, and ``elapsed_ms(a, b)`` on its class).
    Events on an idle stream complete as soon as they are reached, so the upload interval also
    holds the host's staging copy into pinned memory, as the whole call does.
    """
    stream = backend.stream
    marks = [event() for _ in range(4)]
    marks[0].record(stream)
    shape = backend.upload(batch)
    marks[1].record(stream)
    backend.execute(shape)
    marks[2].record(stream)
    pinned = backend.download()
    marks[3].record(stream)
    stream.synchronize()
    t0 = clock()
    out = {name: np.array(v, dtype=np.float32, copy=True) for name, v in pinned.items()}
    copy_out = _ms(t0, clock())
    elapsed = type(marks[0]).elapsed_ms
    h2d, infer, d2h = (elapsed(a, b) for a, b in zip(marks, marks[1:]))
    return out, {"h2d": h2d, "infer": infer, "d2h": d2h + copy_out}


def torch_split(backend, batch: np.ndarray, *, event):
    """``TorchBackend.infer`` with events between upload, the forward pass (or graph replay) and download."""
    torch = backend._torch
    n = batch.shape[0]
    marks = [event() for _ in range(4)]
    with torch.inference_mode():
        marks[0].record()
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(backend._device, non_blocking=True)
        marks[1].record()
        out = backend.run_on_device(x, n)
        marks[2].record()
        host = {k: v.float().cpu().numpy() for k, v in out.items()}
        marks[3].record()
    marks[3].synchronize()
    h2d, infer, d2h = (a.elapsed_time(b) for a, b in zip(marks, marks[1:]))
    return host, {"h2d": h2d, "infer": infer, "d2h": d2h}


def onnxruntime_split(backend, batch: np.ndarray, *, device_type: str, device_id: int = 0, clock: Clock = time.perf_counter):
    """``OnnxRuntimeBackend.infer`` through I/O binding: upload, run, download, each synchronous."""
    import onnxruntime as ort

    session = backend.session
    feed = np.ascontiguousarray(batch, dtype=backend._input_dtype)  # (N, 3, h, w)
    t0 = clock()
    x = ort.OrtValue.ortvalue_from_numpy(feed, device_type, device_id)
    t1 = clock()
    binding = session.io_binding()
    binding.bind_ortvalue_input(INPUT_NAME, x)
    for name in backend._outputs:
        binding.bind_output(name, device_type, device_id)
    session.run_with_iobinding(binding)  # synchronizes the provider's stream before returning
    t2 = clock()
    values = binding.copy_outputs_to_cpu()
    out = {name: np.asarray(v, np.float32) for name, v in zip(backend._outputs, values)}
    t3 = clock()
    return out, {"h2d": _ms(t0, t1), "infer": _ms(t1, t2), "d2h": _ms(t2, t3)}


class StageRunner:
    """Times every stage of one batch at a time; see the module docstring.

    Args:
        backend: the loaded backend (its ``info.preprocessing`` is the contract unless ``contract``).
        preprocessor: the ``Preprocessor`` the locator uses.
        contract: the contract the locator runs (``Locator.contract``: the analysis asked for).
        write_dir: where the write stage puts its PNG maps (emptied by ``close``).
        clock: seconds; ``time.perf_counter`` unless a test brings a fake one.
    """

    def __init__(self, backend: Backend, preprocessor, *, write_dir: Path, clock: Clock = time.perf_counter,
                 contract=None):
        self.backend = backend
        self.pre = preprocessor
        self.contract = contract or backend.info.preprocessing
        self.write_dir = Path(write_dir)
        self.clock = clock

    def run_batch(self, encoded: list[bytes]) -> dict[str, float | None]:
        """One batch through every stage; {stage: ms for the whole batch, or None if not applicable}."""
        clock, n = self.clock, len(encoded)
        times: dict[str, float | None] = {}

        t0 = clock()
        images = [load_image(data, color_order="BGR", source=f"<bytes {k}>")[0] for k, data in enumerate(encoded)]
        times["decode"] = _ms(t0, clock())

        if self.contract.native:
            return self._native_batch(images, times)
        h, w = self.contract.size
        x = np.empty((n, 3, h, w), np.float32)  # (N, 3, h, w)
        t0 = clock()
        self.pre.preprocess(images, "BGR", self.contract, x)
        times["preprocess"] = _ms(t0, clock())

        out, split = infer_stages(self.backend, x, clock=clock)
        times.update(split)
        maps = np.asarray(out["map"], np.float32)[:, 0]  # (N, h, w)

        # Each map is written and dropped before the next is made, as in a stream (trt-locate,
        # locate_iter): holding a batch of full-resolution maps would time fresh page faults
        # (8 MB per 1080p map), not the upsampling.
        times["upsample"] = times["write"] = 0.0
        for k, (m, image) in enumerate(zip(maps, images)):
            t0 = clock()
            full_map = self.pre.upsample(m, image.shape[0], image.shape[1])  # (H, W) float32 in [0, 1]
            bbox_of(full_map, BBOX_LEVEL)
            t1 = clock()
            write_atomic(self.write_dir / f"{k:04d}.png", encode_map(full_map, 8))
            t2 = clock()
            times["upsample"] += _ms(t0, t1)
            times["write"] += _ms(t1, t2)
            del full_map
        return times

    def _native_batch(self, images: list[np.ndarray], times: dict) -> dict[str, float | None]:
        """``native``: the images' tiles in calls of ``len(images)`` tiles (the batch size), each image
        stitched and written as soon as its last tile is inferred."""
        clock, batch = self.clock, len(images)
        h, w = self.contract.size
        tiles, stitch = tiles_of(self.pre), stitch_of(self.pre)
        x = np.empty((batch, 3, h, w), np.float32)  # (batch, 3, h, w) tiles
        grids = [TileGrid.of(im.shape[0], im.shape[1], h, w, self.contract.tile_overlap) for im in images]
        maps = [np.empty((len(g), h, w), np.float32) for g in grids]  # per image: (n, h, w) tile maps
        scores = [np.empty(len(g), np.float32) for g in grids]
        for stage in ("tile", "infer", "stitch", "write"):
            times[stage] = 0.0
        for stage in ("h2d", "d2h"):
            times[stage] = None
        queue = [(i, 0) for i in range(batch)]  # (image, next tile), in order
        k = 0  # next free row of x
        pieces: list[tuple[int, int, int]] = []  # (image, first tile, count) in x

        def run(n: int) -> None:
            out, split = infer_stages(self.backend, x[:n], clock=clock)
            for stage, ms in split.items():
                if ms is not None:
                    times[stage] = (times.get(stage) or 0.0) + ms
            row = 0
            for i, a, c in pieces:
                maps[i][a:a + c] = np.asarray(out["map"], np.float32)[row:row + c, 0]
                scores[i][a:a + c] = np.asarray(out["score"], np.float32).reshape(n, -1)[row:row + c, 0]
                row += c
                if a + c == len(grids[i]):  # the image's last tile: stitch, write, drop
                    t0 = clock()
                    full_map = stitch(maps[i], grids[i], self.contract.tile_window)
                    pool_scores(scores[i], self.contract.tile_pooling)
                    bbox_of(full_map, BBOX_LEVEL)
                    t1 = clock()
                    write_atomic(self.write_dir / f"{i:04d}.png", encode_map(full_map, 8))
                    times["stitch"] += _ms(t0, t1)
                    times["write"] += _ms(t1, clock())
                    maps[i] = None
            pieces.clear()

        for i, _ in queue:
            start = 0
            while start < len(grids[i]):
                count = min(batch - k, len(grids[i]) - start)
                t0 = clock()
                for grid in sub_grids(grids[i], start, count):
                    tiles(images[i], grid, "BGR", self.contract, x[k:k + len(grid)])
                    k += len(grid)
                times["tile"] += _ms(t0, clock())
                pieces.append((i, start, count))
                start += count
                if k == batch:
                    run(k)
                    k = 0
        if k:
            run(k)
        return times

    def measure(self, pool, *, batch: int, iterations: int, warmup: int, ticker=None) -> dict[str, list[float | None]]:
        """``warmup`` untimed batches, then ``iterations`` timed ones; {stage: [ms per batch, ...]}.
        ``ticker`` (``end_to_end.Ticker``) hears each batch."""
        samples = []
        for i in range(warmup + iterations):
            times = self.run_batch(pool.items(i * batch, batch))
            if ticker is not None:
                ticker.add(batch)
            if i >= warmup:
                samples.append(times)
        return {stage: [s[stage] for s in samples] for stage in samples[0]}

    def close(self) -> None:
        shutil.rmtree(self.write_dir, ignore_errors=True)


def summarize_stages(samples: dict[str, list[float | None]], batch: int, device: str) -> dict[str, dict]:
    """{stage: Summary dict (ms per batch of ``batch`` images)}, or ``{"applicable": False, "reason"}``."""
    out = {}
    for stage, values in samples.items():
        if all(v is None for v in values):
            reason = ("no host/device copy on the CPU: the data stays in host memory" if device == "cpu"
                      else "not separable for this backend: included in infer")
            out[stage] = {"applicable": False, "reason": reason}
        else:
            out[stage] = summarize([v for v in values if v is not None], images=batch).to_dict()
    return out


def stage_bytes(height: int, width: int, contract, input_itemsize: int = 4) -> dict[str, int]:
    """Nominal bytes moved per image by pre/post: every input byte read once, every output byte written once.

    preprocess: the uint8 (H, W, 3) image read + the (3, h, w) network input written;
    upsample: the (h, w) float32 map read + the (H, W) float32 full-resolution map written;
    native: tile: the image read + n × (3, h, w) tiles written; stitch: n (h, w) tile maps read +
    the (H, W) map written (n = the image's tiles).
    """
    h, w = contract.size
    if contract.native:
        n = len(TileGrid.of(height, width, h, w, contract.tile_overlap))
        return {
            "tile": height * width * 3 + n * 3 * h * w * input_itemsize,
            "stitch": n * h * w * 4 + height * width * 4,
        }
    return {
        "preprocess": height * width * 3 + 3 * h * w * input_itemsize,
        "upsample": h * w * 4 + height * width * 4,
    }
