"""The batched inference pipeline: decoded inputs in, full-resolution results out, in input order.

Stages and their threads:

1. decoding (and the optional region provider) in a pool of worker threads, at most ``prefetch``
   inputs ahead of the consumer (``prefetch`` below); a video is read by one background thread into
   a bounded queue (``background``);
2. batch assembly in the consumer's thread: crops (one per image, or one per region) are packed into
   batches of ``batch_size``. The last, partial batch runs at its own size (exported models have a
   dynamic batch axis); a backend with a fixed batch (``fixed_batch``) gets it padded, and the
   padding's outputs are dropped;
3. preprocessing of the whole batch by the contract (``Preprocessor``), then inference;
4. upsampling each map to its image's size, bounding box and label in a pool of threads, while the
   next batch is inferred; results leave in input order.

Every stage is timed per input (``LocateResult.timings``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np

from fakelocator.runtime.backends.base import Backend
from fakelocator.runtime.preprocess import Preprocessor
from fakelocator.runtime.results import BBOX_LEVEL, Box, Face, FrameResult, LocateResult, RegionResult, bbox_of, label_of

T = TypeVar("T")
R = TypeVar("R")


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
    outputs: list = field(default_factory=list)  # per crop: ((h, w) float32 map, score, (C,) features | None)
    full: list = field(default_factory=list)  # per crop: its map already at full resolution (GPU path), else empty
    remaining: int = 0

    def crops(self) -> list[np.ndarray]:
        if self.error is not None:
            return []
        if self.boxes is None:
            return [self.image]
        return [self.image[y0:y1, x0:x1] for x0, y0, x1, y1 in self.boxes]


@dataclass
class _Crop:
    job: Job
    slot: int
    image: np.ndarray


class Runner:
    """Batches, preprocesses, infers and finishes jobs; see the module docstring."""

    def __init__(
        self,
        backend: Backend,
        preprocessor: Preprocessor,
        *,
        batch_size: int,
        threshold: float,
        workers: int,
        keep_images: bool = False,
        keep_outputs: bool = False,
        bbox_level: float = BBOX_LEVEL,
    ):
        self.backend = backend
        self.pre = preprocessor
        self.contract = backend.info.preprocessing
        fixed = getattr(backend, "fixed_batch", None)
        limit = backend.max_batch
        self.batch_size = fixed or (min(batch_size, limit) if limit else batch_size)
        self.fixed_batch = fixed
        self.threshold = threshold
        self.keep_images = keep_images
        self.keep_outputs = keep_outputs
        self.bbox_level = bbox_level
        self.post_workers = workers if getattr(preprocessor, "thread_safe", True) else 1
        h, w = self.contract.size
        self._input = np.zeros((self.batch_size, 3, h, w), np.float32)  # (B, 3, h, w) reused per batch

    def run(self, jobs: Iterable[Job]) -> Iterator[LocateResult]:
        pending: deque[Job] = deque()
        crops: deque[_Crop] = deque()
        finishing: deque[tuple[Job, Future]] = deque()
        pool = ThreadPoolExecutor(max(1, self.post_workers), thread_name_prefix="fakelocator-post")
        try:
            for job in jobs:
                job_crops = job.crops()
                job.outputs = [None] * len(job_crops)
                job.remaining = len(job_crops)
                pending.append(job)
                crops.extend(_Crop(job, i, c) for i, c in enumerate(job_crops))
                while len(crops) >= self.batch_size:
                    self._run_batch([crops.popleft() for _ in range(self.batch_size)])
                self._release(pending, finishing, pool)
                yield from self._emit(finishing, keep=2 * self.batch_size)
            while crops:
                self._run_batch([crops.popleft() for _ in range(min(len(crops), self.batch_size))])
            self._flush()
            self._release(pending, finishing, pool)
            yield from self._emit(finishing, keep=0)
        finally:
            for _, f in finishing:
                f.cancel()
            pool.shutdown(wait=True)

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
        """Crop ``slot``'s map at (height, width) float32 in [0, 1]: upsampled here, on the host path."""
        return self.pre.upsample(job.outputs[slot][0], height, width)

    #: The timing key of ``_finish`` (the host path upsamples there).
    finish_timing = "upsample"

    def _run_batch(self, batch: list[_Crop]) -> None:
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
        feed = self._input if self.fixed_batch and n < self.fixed_batch else x
        out = self.backend.infer(feed)
        t2 = time.perf_counter()
        maps = np.asarray(out["map"], np.float32)[:n, 0]  # (n, h, w)
        scores = np.asarray(out["score"], np.float32).reshape(len(feed), -1)[:n, 0]  # (n,)
        features = out.get("features")
        if features is not None:
            features = np.asarray(features, np.float32).reshape(len(feed), -1)[:n]  # (n, C)
        pre_ms, infer_ms = (t1 - t0) * 1000 / n, (t2 - t1) * 1000 / n
        for i, crop in enumerate(batch):
            job = crop.job
            job.outputs[crop.slot] = (maps[i], float(scores[i]), None if features is None else features[i])
            job.timings["preprocess"] = job.timings.get("preprocess", 0.0) + pre_ms
            job.timings["infer"] = job.timings.get("infer", 0.0) + infer_ms
            job.remaining -= 1
            if job.remaining == 0 and not self.keep_images:
                job.image = None  # only its size is needed from here on

    def _finish(self, job: Job) -> LocateResult:
        extra = {"frame": job.frame, "time_s": job.time_s} if job.frame is not None else {}
        cls = FrameResult if job.frame is not None else LocateResult
        if job.error is not None:
            return cls(job.source, width=job.width, height=job.height, timings=job.timings, error=job.error, **extra)
        t0 = time.perf_counter()
        height, width = job.height, job.width
        regions = outputs = None
        if job.boxes is None:
            small, score, features = job.outputs[0]
            full = self._full_map(job, 0, height, width)  # (H, W) float32 in [0, 1]
            if self.keep_outputs:
                outputs = {"map": np.array(small, np.float32)}  # copies: not views of the whole batch
                if features is not None:
                    outputs["features"] = np.array(features, np.float32)
        else:
            full = np.zeros((height, width), np.float32)
            regions = []
            for i, ((x0, y0, x1, y1), (_, s, _)) in enumerate(zip(job.boxes, job.outputs)):
                patch = full[y0:y1, x0:x1]
                np.maximum(patch, self._full_map(job, i, y1 - y0, x1 - x0), out=patch)
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
            label=label_of(score, self.threshold),
            bbox=bbox,
            width=width,
            height=height,
            timings=job.timings,
            regions=regions,
            faces=job.faces,
            image=job.image if self.keep_images else None,
            color_order=job.color_order,
            outputs=outputs,
            **extra,
        )
        job.image = job.outputs = job.full = None
        return result
