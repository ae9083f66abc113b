"""The batched inference pipeline: decoded inputs in, full-resolution results out, in input order.

Stages and their threads:

1. decoding (and the optional region provider) in a pool of worker threads, at most ``prefetch``
   inputs ahead of the consumer (``prefetch`` below); a video is read by one background thread into
   a bounded queue (``background``);
2. batch assembly in the consumer's thread: crops (one per image, or one per region) are packed into
   batches of ``batch_size`` network inputs. In ``fit`` analysis a crop is one input (resized to
   the network's size); in ``native`` analysis (``fakelocator.tiling``) a crop is its tiles at its
   own scale, and tiles of many crops fill one batch (a crop's tiles may span batches). The last,
   partial batch runs at its own size (exported models have a dynamic batch axis); a backend with
   a fixed batch (``fixed_batch``) gets it padded, and the padding's outputs are dropped;
3. preprocessing of the whole batch by the contract (``Preprocessor.preprocess``, or ``tiles``),
   then inference;
4. in a pool of threads, while the next batch is inferred: each crop's map to full resolution
   (``upsample``, or ``stitch`` of its tile maps, with its tile scores pooled), bounding box and
   label; results leave in input order.

Every stage is timed per input (``LocateResult.timings``: ``preprocess``/``upsample`` in ``fit``,
``tile``/``stitch`` in ``native``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np

from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.backends.base import Backend
from fakelocator.runtime.levels import map_levels
from fakelocator.runtime.preprocess import Preprocessor, stitch_of, tiles_of
from fakelocator.tiling import TileGrid, pool_scores, span_rects, tile_count
from fakelocator.runtime.spec import DEFAULT_MAX_TILES, MIN_SIDE, RunSpec  # noqa: F401 - DEFAULT_MAX_TILES: its old home
from fakelocator.runtime.results import BBOX_LEVEL, Box, Face, FrameResult, LocateResult, RegionResult, bbox_of, label_of

#: What a result's ``map`` holds: float32 in [0, 1], or its 8-bit levels (``levels.map_levels``).
MAP_DTYPES = ("float32", "uint8")

T = TypeVar("T")
R = TypeVar("R")



def too_small(width: int, height: int, min_side: int = MIN_SIDE) -> str:
    """The error of an image with a side under ``min_side``: no verdict either way."""
    return (f"too small to analyse: {width}x{height} pixels, under the minimum of {min_side} pixels a side; "
            "an image this small holds no trace to read, so it is neither real nor fake")


def over_tile_budget(what: str, total: int, contract: Preprocessing, max_tiles: int) -> str:
    """The error of an input that takes more than ``max_tiles`` tiles in ``native`` analysis."""
    h, w = contract.size
    return (f"too large for native analysis: {what} take {total} tiles of {w}x{h}, more than the "
            f"tile budget of {max_tiles} (raise --max-tiles / max_tiles, or use --analysis fit)")


def header_tile_check(contract: Preprocessing, max_tiles: int | None) -> Callable[[int, int], str | None] | None:
    """For ``native`` analysis with a budget: a check of an image's header size, run before it is
    decoded (a 10 MB PNG of 30000 x 30000 would take 2.7 GB decoded, only to be refused). Either
    orientation is tried (EXIF may turn it), and only an image over the budget both ways is refused."""
    if not contract.native or max_tiles is None:
        return None
    th, tw = contract.size

    def check(width: int, height: int) -> str | None:
        total = min(tile_count(height, width, th, tw, contract.tile_overlap),
                    tile_count(width, height, th, tw, contract.tile_overlap))
        return None if total <= max_tiles else over_tile_budget(f"{width}x{height} pixels", total, contract, max_tiles)

    return check


def prefetch(fn: Callable[[T], R], items: Iterable[T], *, workers: int, depth: int) -> Iterator[R]:
    """``map(fn, items)`` on ``workers`` threads, in order, with at most ``depth`` calls in flight.

    ``items`` is pulled lazily, so a generator of a million paths is never materialized; it is
    closed when this generator is.
    """
    window: deque[Future] = deque()
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="fakelocator-decode")
    source = iter(items)
    try:
        for item in source:
            window.append(pool.submit(fn, item))
            if len(window) >= depth:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
    finally:
        for f in window:
            f.cancel()
        pool.shutdown(wait=True)
        close = getattr(source, "close", None)
        if close is not None:
            close()


_END = object()


def background(items: Iterable[T], *, depth: int) -> Iterator[T]:
    """Iterate ``items`` in a background thread, at most ``depth`` ahead of the consumer.

    Closing the returned generator stops the thread and closes ``items`` (in that thread), so a
    reader that owns a file or a decoder releases it where it was opened.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        it = iter(items)
        try:
            for item in it:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put((_END, e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="fakelocator-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, error = q.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join()


@dataclass
class Job:
    """One image or frame travelling through the pipeline."""

    index: int
    source: str
    image: np.ndarray | None = None  # (H, W, 3) uint8 in color_order
    color_order: str = "BGR"
    frame: int | None = None
    time_s: float | None = None
    boxes: list[Box] | None = None  # None: the whole image is one crop
    faces: list[Face] | None = None  # what a face provider detected (boxes[i] is the crop of faces[i])
    error: str | None = None
    width: int | None = None
    height: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # per crop: fit: ((h, w) float32 map, score, (C,) features | None);
    #           native: a _TileOutputs filled as the crop's tiles are inferred
    outputs: list = field(default_factory=list)
    full: list = field(default_factory=list)  # per crop: its map already at full resolution (GPU path), else empty
    remaining: int = 0  # network inputs (crops in fit, tiles in native) not yet inferred
    tiles: int | None = None  # network inputs this job takes

    def crops(self) -> list[np.ndarray]:
        if self.error is not None:
            return []
        if self.boxes is None:
            return [self.image]
        return [self.image[y0:y1, x0:x1] for x0, y0, x1, y1 in self.boxes]


@dataclass
class _Crop:
    """One crop waiting for inference: in ``fit`` one network input, in ``native`` its ``grid``'s
    tiles, of which ``start:start + count`` go into the batch being assembled."""

    job: Job
    slot: int
    image: np.ndarray
    grid: TileGrid | None = None
    start: int = 0
    count: int = 1

    @property
    def size(self) -> int:
        return 1 if self.grid is None else len(self.grid)


@dataclass
class _TileOutputs:
    """A ``native`` crop's tile outputs, filled batch by batch."""

    grid: TileGrid
    maps: np.ndarray | None  # (n, th, tw) float32; None on the device path unless the outputs are kept
    scores: np.ndarray  # (n,) float32
    features: np.ndarray | None = None  # (n, C) float32, allocated with the first batch that has them


def _fail(job: Job, e: BaseException) -> None:
    """Mark ``job`` failed by ``e`` and let go of its buffers (its remaining tiles are inferred and dropped)."""
    if isinstance(e, MemoryError):
        job.error = f"out of memory analysing it ({job.width}x{job.height} pixels, {job.tiles} network inputs)"
    else:
        job.error = f"cannot be analysed ({type(e).__name__}: {e})"
    job.outputs = [None] * len(job.outputs)
    job.full = []


def sub_grids(grid: TileGrid, start: int, count: int) -> list[TileGrid]:
    """Tiles ``start:start + count`` of ``grid`` (row-major) as at most three rectangular grids, in order."""
    return [replace(grid, ys=grid.ys[r0:r0 + rows], xs=grid.xs[c0:c0 + cols])
            for r0, rows, c0, cols in span_rects(len(grid.ys), len(grid.xs), start, count)]


class Runner:
    """Batches, preprocesses, infers and finishes jobs; see the module docstring.

    ``spec`` is the run's resolved specification (``fakelocator.runtime.spec``): its contract,
    threshold, batch size and tile budget are what runs; nothing is re-read from the backend.
    """

    def __init__(
        self,
        backend: Backend,
        preprocessor: Preprocessor,
        spec: RunSpec,
        *,
        workers: int,
        keep_images: bool = False,
        keep_outputs: bool = False,
        bbox_level: float = BBOX_LEVEL,
        map_dtype: str = "float32",
    ):
        if map_dtype not in MAP_DTYPES:
            raise FakeLocatorError(f"map_dtype must be one of {MAP_DTYPES}, got {map_dtype!r}")
        self.backend = backend
        self.pre = preprocessor
        self.spec = spec
        self.contract = spec.contract
        self.native = spec.native
        self._tiles = tiles_of(preprocessor)
        self._stitch = stitch_of(preprocessor)
        self._stitch_u8 = getattr(preprocessor, "stitch_u8", None) or (lambda maps, grid, window: map_levels(self._stitch(maps, grid, window)))
        self._upsample_u8 = getattr(preprocessor, "upsample_u8", None) or (lambda m, h, w: map_levels(preprocessor.upsample(m, h, w)))
        self.batch_size = spec.batch_size
        self.fixed_batch = spec.fixed_batch
        self.keep_images = keep_images
        self.keep_outputs = keep_outputs
        self.bbox_level = bbox_level
        self.levels = map_dtype == "uint8"  # results carry the map's 8-bit levels (an 8-bit PNG's sink)
        self.post_workers = workers if getattr(preprocessor, "thread_safe", True) else 1
        h, w = self.contract.size
        self._input = np.zeros((self.batch_size, 3, h, w), np.float32)  # (B, 3, h, w) reused per batch

    def run(self, jobs: Iterable[Job]) -> Iterator[LocateResult]:
        pending: deque[Job] = deque()
        crops: deque[_Crop] = deque()
        queued = 0  # network inputs in ``crops`` not yet taken into a batch
        finishing: deque[tuple[Job, Future]] = deque()
        pool = ThreadPoolExecutor(max(1, self.post_workers), thread_name_prefix="fakelocator-post")
        try:
            for job in jobs:
                job_crops = self._crops_of(job)
                job.outputs = [None] * len(job_crops)
                job.remaining = sum(c.size for c in job_crops)
                pending.append(job)
                crops.extend(job_crops)
                queued += job.remaining
                while queued >= self.batch_size:
                    queued -= self._run_batch(self._take(crops))
                self._release(pending, finishing, pool)
                yield from self._emit(finishing, keep=2 * self.batch_size)
            while crops:
                self._run_batch(self._take(crops))
            self._flush()
            self._release(pending, finishing, pool)
            yield from self._emit(finishing, keep=0)
        finally:
            for _, f in finishing:
                f.cancel()
            pool.shutdown(wait=True)

    def _crops_of(self, job: Job) -> list[_Crop]:
        """The job's crops; in ``native`` with their tile grids, or an error when over the tile budget
        or under the minimum size."""
        if job.error is None and min(job.height, job.width) < self.spec.min_side:
            job.error = too_small(job.width, job.height, self.spec.min_side)
            job.image = None
        images = job.crops()
        if not self.native:
            job.tiles = len(images) if job.error is None else None
            return [_Crop(job, i, c) for i, c in enumerate(images)]
        h, w = self.contract.size
        grids = [TileGrid.of(c.shape[0], c.shape[1], h, w, self.contract.tile_overlap) for c in images]
        total = sum(len(g) for g in grids)
        if self.spec.max_tiles is not None and total > self.spec.max_tiles:
            what = f"{len(images)} face crops" if job.boxes is not None else f"{job.width}x{job.height} pixels"
            job.error = over_tile_budget(what, total, self.contract, self.spec.max_tiles)
            job.image = None
            return []
        job.tiles = total if job.error is None else None
        return [_Crop(job, i, c, grid=g) for i, (c, g) in enumerate(zip(images, grids))]

    def _take(self, crops: deque[_Crop]) -> list[_Crop]:
        """Up to ``batch_size`` network inputs from the front of ``crops``: whole crops in ``fit``;
        in ``native``, tiles, so that a crop's tiles may be split over consecutive batches."""
        batch, room = [], self.batch_size
        while crops and room:
            crop = crops[0]
            take = min(room, crop.size - crop.start)
            batch.append(replace(crop, count=take))
            crop.start += take
            room -= take
            if crop.start == crop.size:
                crops.popleft()
        return batch

    def _release(self, pending: deque, finishing: deque, pool: ThreadPoolExecutor) -> None:
        """Hand every leading job whose crops are all inferred to the finishing pool, in order."""
        while pending and pending[0].remaining == 0:
            job = pending.popleft()
            finishing.append((job, pool.submit(self._finish, job)))

    @staticmethod
    def _emit(finishing: deque, keep: int) -> Iterator[LocateResult]:
        """Yield finished results in order; wait for the oldest while more than ``keep`` are in flight."""
        while finishing and (finishing[0][1].done() or len(finishing) > keep):
            yield finishing.popleft()[1].result()

    def _flush(self) -> None:
        """Complete every batch still in flight (the host path completes each in ``_run_batch``)."""

    def _full_map(self, job: Job, slot: int, height: int, width: int) -> np.ndarray:
        """Crop ``slot``'s map at (height, width): float32 in [0, 1], or its uint8 levels; upsampled
        here, on the host path (``upsample_u8`` straight to levels, no float32 full-resolution map)."""
        if self.levels:
            return self._upsample_u8(job.outputs[slot][0], height, width)
        return self.pre.upsample(job.outputs[slot][0], height, width)

    @property
    def finish_timing(self) -> str:
        """The timing key of ``_finish``: the host path upsamples (``fit``) or stitches (``native``) there."""
        return "stitch" if self.native else "upsample"

    def _run_batch(self, batch: list[_Crop]) -> int:
        """Preprocess, infer and store one batch; returns how many network inputs it held."""
        if self.native:
            return self._run_tiles(batch)
        n = len(batch)
        t0 = time.perf_counter()
        x = self._input[:n]
        orders = {c.job.color_order for c in batch}
        if len(orders) == 1:
            self.pre.preprocess([c.image for c in batch], orders.pop(), self.contract, x)
        else:
            for order in orders:
                idx = [i for i, c in enumerate(batch) if c.job.color_order == order]
                part = np.empty((len(idx),) + x.shape[1:], np.float32)
                self.pre.preprocess([batch[i].image for i in idx], order, self.contract, part)
                x[idx] = part
        t1 = time.perf_counter()
        maps, scores, features = self._infer(x, n)
        t2 = time.perf_counter()
        pre_ms, infer_ms = (t1 - t0) * 1000 / n, (t2 - t1) * 1000 / n
        for i, crop in enumerate(batch):
            job = crop.job
            job.outputs[crop.slot] = (maps[i], float(scores[i]), None if features is None else features[i])
            job.timings["preprocess"] = job.timings.get("preprocess", 0.0) + pre_ms
            job.timings["infer"] = job.timings.get("infer", 0.0) + infer_ms
            job.remaining -= 1
            if job.remaining == 0 and not self.keep_images:
                job.image = None  # only its size is needed from here on
        return n

    def _infer(self, x: np.ndarray, n: int):
        """Run the backend on the first ``n`` rows of the input batch: ((n, h, w) maps, (n,) scores, (n, C) features | None)."""
        feed = self._input if self.fixed_batch and n < self.fixed_batch else x
        out = self.backend.infer(feed)
        maps = np.asarray(out["map"], np.float32)[:n, 0]  # (n, h, w)
        scores = np.asarray(out["score"], np.float32).reshape(len(feed), -1)[:n, 0]  # (n,)
        features = out.get("features")
        if features is not None:
            features = np.asarray(features, np.float32).reshape(len(feed), -1)[:n]  # (n, C)
        return maps, scores, features

    def _run_tiles(self, batch: list[_Crop]) -> int:
        """``native``: each piece's tiles into the input batch, inference, tile outputs to their crops."""
        n = sum(c.count for c in batch)
        t0 = time.perf_counter()
        k = 0
        for crop in batch:
            for grid in sub_grids(crop.grid, crop.start, crop.count):
                if crop.job.error is None:
                    try:
                        self._tiles(crop.image, grid, crop.job.color_order, self.contract, self._input[k:k + len(grid)])
                    except Exception as e:  # noqa: BLE001 - one image's tiles fail that image, not its batch
                        _fail(crop.job, e)
                if crop.job.error is not None:
                    self._input[k:k + len(grid)] = 0.0  # its rows are inferred with the batch, and dropped
                k += len(grid)
        t1 = time.perf_counter()
        maps, scores, features = self._infer(self._input[:n], n)
        t2 = time.perf_counter()
        tile_ms, infer_ms = (t1 - t0) * 1000 / n, (t2 - t1) * 1000 / n
        k = 0
        for crop in batch:
            job, a, b = crop.job, crop.start, crop.start + crop.count
            try:
                if job.error is None:
                    self._store_tiles(job, crop, a, b, maps[k:k + crop.count], scores[k:k + crop.count],
                                      None if features is None else features[k:k + crop.count])
            except MemoryError as e:  # its tile maps do not fit in memory: this input fails, the run goes on
                _fail(job, e)
            k += crop.count
            job.timings["tile"] = job.timings.get("tile", 0.0) + tile_ms * crop.count
            job.timings["infer"] = job.timings.get("infer", 0.0) + infer_ms * crop.count
            job.remaining -= crop.count
            if job.remaining == 0 and not self.keep_images:
                job.image = None
        return n

    @staticmethod
    def _store_tiles(job: Job, crop: _Crop, a: int, b: int, maps, scores, features) -> None:
        """Tiles ``a:b`` of the crop's outputs (allocated with its first batch: (n, th, tw) maps, (n,) scores)."""
        outs = job.outputs[crop.slot]
        if outs is None:
            size = len(crop.grid)
            outs = job.outputs[crop.slot] = _TileOutputs(
                crop.grid, np.empty((size,) + maps.shape[1:], np.float32), np.empty(size, np.float32))
        outs.maps[a:b] = maps
        outs.scores[a:b] = scores
        if features is not None:
            if outs.features is None:
                outs.features = np.empty((len(crop.grid), features.shape[1]), np.float32)
            outs.features[a:b] = features

    def _crop_map(self, job: Job, slot: int, height: int, width: int) -> tuple[np.ndarray, float]:
        """Crop ``slot``'s (height, width) float32 map in [0, 1] and its score."""
        if self.native:
            outs: _TileOutputs = job.outputs[slot]
            stitch = self._stitch_u8 if self.levels else self._stitch
            return stitch(outs.maps, outs.grid, self.contract.tile_window), pool_scores(outs.scores, self.contract.tile_pooling)
        return self._full_map(job, slot, height, width), job.outputs[slot][1]

    def _network_outputs(self, outputs) -> dict[str, np.ndarray]:
        """``keep_outputs``: the network's own outputs for a whole image (copies, not views of the batch).

        fit: ``map`` (h, w) and ``features`` (C,); native: ``tile_maps`` (n, th, tw), ``tile_scores``
        (n,) and ``features``, the mean of the tiles' features (C,).
        """
        if isinstance(outputs, _TileOutputs):
            kept = {"tile_maps": outputs.maps, "tile_scores": outputs.scores}
            if outputs.features is not None:
                kept["features"] = outputs.features.mean(axis=0)
            return kept
        small, _, features = outputs
        kept = {"map": np.array(small, np.float32)}
        if features is not None:
            kept["features"] = np.array(features, np.float32)
        return kept

    def _finish(self, job: Job) -> LocateResult:
        try:
            return self._finish_job(job)
        except (MemoryError, FakeLocatorError) as e:  # e.g. a full-resolution map that does not fit: this input only
            _fail(job, e)
            return self._finish_job(job)

    def _finish_job(self, job: Job) -> LocateResult:
        extra = {"frame": job.frame, "time_s": job.time_s} if job.frame is not None else {}
        cls = FrameResult if job.frame is not None else LocateResult
        if job.error is not None:
            job.image = job.outputs = job.full = None
            return cls(job.source, width=job.width, height=job.height, timings=job.timings, error=job.error, **extra)
        t0 = time.perf_counter()
        height, width = job.height, job.width
        regions = outputs = None
        if job.boxes is None:
            full, score = self._crop_map(job, 0, height, width)  # (H, W) float32 in [0, 1]
            if self.keep_outputs:
                outputs = self._network_outputs(job.outputs[0])
        else:
            full = np.zeros((height, width), np.uint8 if self.levels else np.float32)
            regions = []
            for i, (x0, y0, x1, y1) in enumerate(job.boxes):
                patch = full[y0:y1, x0:x1]
                crop_map, s = self._crop_map(job, i, y1 - y0, x1 - x0)
                np.maximum(patch, crop_map, out=patch)
                regions.append(RegionResult((x0, y0, x1, y1), s))
            score = max((r.score for r in regions), default=0.0)
        if not np.isfinite(score):
            job.image = job.outputs = job.full = None
            return cls(job.source, width=width, height=height, timings=job.timings,
                       error=f"the model returned a non-finite score ({score})", **extra)
        bbox = bbox_of(full, self.bbox_level)
        job.timings[self.finish_timing] = (time.perf_counter() - t0) * 1000
        result = cls(
            job.source,
            map=full,
            score=score,
            label=label_of(score, self.spec.threshold),
            bbox=bbox,
            width=width,
            height=height,
            timings=job.timings,
            regions=regions,
            faces=job.faces,
            image=job.image if self.keep_images else None,
            color_order=job.color_order,
            outputs=outputs,
            tiles=job.tiles,
            **extra,
        )
        job.image = job.outputs = job.full = None
        return result
