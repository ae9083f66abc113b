"""Run a locator over files and videos into an output folder: the work behind ``trt-locate``.

Images go first, batched together across files; then each video in turn. Maps and overlays are
encoded and written by a pool of threads while inference goes on; each record is appended to
``results.jsonl`` once its files are in place (see ``fakelocator.runtime.outputs`` for the layout
and the crash guarantees).
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from fakelocator.errors import InputError
from fakelocator.runtime.inputs import Input
from fakelocator.runtime.locator import Locator
from fakelocator.runtime.outputs import (
    Journal, Layout, encode_jpeg, encode_map, is_output_folder_error, output_error, write_atomic,
)
from fakelocator.runtime.overlay import DEFAULT_ALPHA, colormap_lut, opacity_table, overlay
from fakelocator.runtime.results import LocateResult, VideoSummary


@dataclass(frozen=True)
class RunOptions:
    """How to sample videos and what to write.

    Args:
        every, fps, max_frames: video frame sampling (see ``Locator.locate_video``).
        map_depth: 8 (map × 255) or 16 (map × 65535) bits per map pixel.
        overlay: also write a heat-map overlay JPEG per image and frame (``runtime.overlay``:
            transparent where the map is below 0.1, up to ``overlay_alpha`` opaque from 0.6).
        writers: threads encoding and writing files.
        map_levels: with 8-bit maps, the pipeline stitches or upsamples each map straight to its
            8-bit levels (``Preprocessor.stitch_u8``/``upsample_u8``; no float32 full-resolution map is
            made, quantized and dropped); False: float32 maps quantized at encoding (the same bytes,
            ``levels.map_levels``; kept to measure the difference, docs/benchmarks.md).
    """

    every: int | None = None
    fps: float | None = None
    max_frames: int | None = None
    map_depth: int = 8
    overlay: bool = False
    overlay_alpha: float = DEFAULT_ALPHA
    writers: int = 4
    map_levels: bool = True

    @property
    def map_dtype(self) -> str:
        """What the pipeline hands the writer: 8-bit levels for an 8-bit sink, else float32."""
        return "uint8" if self.map_depth == 8 and self.map_levels else "float32"


@dataclass
class RunStats:
    """Counts over the inputs of this run, including those an earlier run recorded (``skipped``)."""

    inputs: int = 0
    images: int = 0
    videos: int = 0
    frames: int = 0
    ok: int = 0
    failed: int = 0
    fake: int = 0
    skipped: int = 0
    processed: int = 0  # images and frames inferred by this run (not those that failed to decode, nor faceless ones left out)
    faceless: int = 0  # with face detection: images and frames in which no face was found
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)


class OutputWriter:
    """Writes one result's files in a thread pool; ``submit`` returns a future of its record.

    Overlays use the preprocessor's ``overlay`` when it has one (the native library), else the
    reference ``fakelocator.runtime.overlay.overlay``; both compute the same formula (the native
    library gets the colour table and the opacity table). A map of 8-bit levels (the uint8 path)
    is blended by the reference, which works on levels.
    """

    def __init__(self, layout: Layout, options: RunOptions, preprocessor=None):
        self.layout = layout
        self.options = options
        native = getattr(preprocessor, "overlay", None)
        native_overlay = (lambda image, m, alpha: native(image, m, opacity_table(alpha), colormap_lut())) if native else overlay
        self.overlay = lambda image, m, alpha: (overlay if m.dtype == np.uint8 else native_overlay)(image, m, alpha)
        self.pool = ThreadPoolExecutor(max(1, options.writers), thread_name_prefix="fakelocator-write")

    def submit(self, result: LocateResult, item: Input, kind: str) -> Future:
        return self.pool.submit(self._write, result, item, kind)

    def _write(self, result: LocateResult, item: Input, kind: str) -> dict:
        t0 = time.perf_counter()
        record = {"kind": kind, **result.to_record(), "path": item.path}
        if result.error is None:
            frame = getattr(result, "frame", None)
            try:
                map_path = self.layout.map_path(item.key, frame)
                write_atomic(map_path, encode_map(result.map, self.options.map_depth))
                record["map"] = self.layout.relative(map_path)
                if self.options.overlay:
                    image = result.image if result.color_order == "BGR" else np.ascontiguousarray(result.image[:, :, ::-1])
                    over_path = self.layout.overlay_path(item.key, frame)
                    write_atomic(over_path, encode_jpeg(self.overlay(image, result.map, self.options.overlay_alpha)))
                    record["overlay"] = self.layout.relative(over_path)
            except OSError as e:
                if is_output_folder_error(e):  # disk full, read-only, ...: every later input would fail too
                    raise output_error(self.layout.root, e) from None
                record.update(map=None, overlay=None, error=f"cannot write outputs ({e})")
        result.map = result.image = None
        record["timings_ms"]["write"] = round((time.perf_counter() - t0) * 1000, 3)
        return record

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def run(
    locator: Locator,
    inputs: list[Input],
    layout: Layout,
    journal: Journal,
    options: RunOptions,
    *,
    on_record: Callable[[dict], None] = lambda record: None,
    on_input_done: Callable[[Input, bool], None] = lambda item, ok: None,
) -> RunStats:
    """Process every input not yet recorded in ``journal``; call ``on_record`` for each new record."""
    stats = RunStats(inputs=len(inputs))
    started = time.perf_counter()
    recorded = journal.recorded
    writer = OutputWriter(layout, options, locator.preprocessor)
    window: deque[tuple[Input, Future]] = deque()
    limit = 2 * options.writers + locator.batch_size

    def record(rec: dict) -> None:
        journal.write(rec)
        on_record(rec)

    def drain(keep: int) -> None:
        while window and (window[0][1].done() or len(window) > keep):
            item, future = window.popleft()
            rec = future.result()
            record(rec)
            if rec["kind"] == "image":
                _count_image(stats, item, rec)
                on_input_done(item, rec["error"] is None)
            else:
                stats.frames += 1
                stats.faceless += rec.get("analysed") in ("image", "nothing")

    try:
        images = [i for i in inputs if i.kind == "image"]
        videos = [i for i in inputs if i.kind == "video"]
        stats.images, stats.videos = len(images), len(videos)
        todo: list[Input] = []
        for item in images:
            if recorded.done(item.path, "image"):
                stats.skipped += 1
                _count_image(stats, item, recorded.images[item.path])
                on_input_done(item, recorded.images[item.path].get("error") is None)
            elif item.error is not None:
                rec = {"kind": "image", **LocateResult(item.path, error=item.error).to_record()}
                record(rec)
                _count_image(stats, item, rec)
                on_input_done(item, False)
            else:
                todo.append(item)
        results = locator.locate_iter((i.path for i in todo), on_error="record", keep_images=options.overlay,
                                      map_dtype=options.map_dtype)
        for item, result in zip(todo, results):
            stats.processed += result.error is None and result.analysed != "nothing"
            window.append((item, writer.submit(result, item, "image")))
            drain(limit)
        drain(0)

        for item in videos:
            ok = _run_video(locator, item, options, writer, recorded, stats, record, window, drain, limit)
            on_input_done(item, ok)
    finally:
        writer.close()
        # Ended by an error (the model, the output folder, stdout): the files already written get
        # their records, so no map is left without one.
        while window:
            item, future = window.popleft()
            if future.cancelled() or future.exception() is not None:
                continue
            try:
                journal.write(future.result())  # not on_record: it may be what failed (stdout closed)
            except Exception:  # noqa: BLE001 - the journal itself failed: the error in flight says why
                break
        stats.seconds = time.perf_counter() - started
    return stats


def _count_image(stats: RunStats, item: Input, rec: dict) -> None:
    if rec.get("error") is None:
        stats.ok += 1
        stats.fake += rec.get("label") == "fake"
        stats.faceless += rec.get("analysed") in ("image", "nothing")
    else:
        stats.failed += 1
        stats.failures.append((item.path, rec["error"]))


def _run_video(locator, item, options, writer, recorded, stats, record, window, drain, limit) -> bool:
    progress = recorded.videos.get(item.path)
    if progress is not None and progress.summary is not None:
        stats.skipped += 1
        stats.frames += len(progress.frames) + len(progress.empty)
        return _count_video(stats, item, progress.summary)
    if progress is not None:
        stats.frames += len(progress.frames) + len(progress.empty)
    summary_rec = None
    if item.error is not None:
        error = item.error
    else:
        try:
            video = locator.locate_video(
                item.path,
                every=options.every,
                fps=options.fps,
                max_frames=options.max_frames,
                keep_images=options.overlay,
                map_dtype=options.map_dtype,
                known=progress.frames if progress else None,
                known_empty=progress.empty if progress else (),
            )
        except InputError as e:
            error = e.reason
        else:
            with video:
                for result in video:
                    stats.processed += result.analysed != "nothing"
                    window.append((item, writer.submit(result, item, "frame")))
                    drain(limit)
                summary = video.summary
            drain(0)
            summary_rec = {"kind": "video", **summary.to_record(), "path": item.path}
            summary_rec["tiles"] += progress.tiles if progress is not None else 0  # frames an earlier run analysed
            error = None
    if summary_rec is None:
        summary_rec = {"kind": "video", **VideoSummary(item.path, error=error).to_record()}
    record(summary_rec)
    return _count_video(stats, item, summary_rec)


def _count_video(stats: RunStats, item: Input, rec: dict) -> bool:
    failed_frames = (rec.get("summary") or {}).get("failed_frames", 0)
    if rec.get("error") is None and not failed_frames:
        stats.ok += 1
        stats.fake += rec.get("label") == "fake"
        return True
    stats.failed += 1
    reason = rec.get("error") or f"{failed_frames} frame(s) failed"
    stats.failures.append((item.path, reason))
    return False

