"""Videos: frame sampling, and the iterable of per-frame results that ends in a summary.

    video = locator.locate_video("clip.mp4", fps=2)
    for frame in video:          # FrameResult, as soon as its batch is done
        ...
    print(video.summary)         # VideoSummary; reads the rest of the video first if needed

Sampling: ``every=N`` takes frames 0, N, 2N, …; ``fps=F`` takes the first frame at or after each
multiple of 1/F seconds (timestamps from the container's frame rate); neither takes every frame.
``max_frames`` stops after that many sampled frames. Frames that are not sampled are only
``grab``-bed (demuxed and skipped), not converted to images.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping

import numpy as np

from fakelocator.errors import FakeLocatorError, InputError
from fakelocator.runtime.decode import too_large
from fakelocator.runtime.results import VERDICT_STATISTICS, FrameResult, VideoSummary, summarize

if TYPE_CHECKING:
    from fakelocator.runtime.locator import Locator


@dataclass(frozen=True)
class Sampling:
    every: int | None = None
    fps: float | None = None
    max_frames: int | None = None

    def __post_init__(self):
        if self.every is not None and self.fps is not None:
            raise FakeLocatorError("give either every or fps, not both")
        if self.every is not None and self.every < 1:
            raise FakeLocatorError(f"every must be >= 1, got {self.every}")
        if self.fps is not None and not self.fps > 0:
            raise FakeLocatorError(f"fps must be > 0, got {self.fps}")
        if self.max_frames is not None and self.max_frames < 1:
            raise FakeLocatorError(f"max_frames must be >= 1, got {self.max_frames}")


@dataclass
class RawFrame:
    index: int
    time_s: float | None
    image: np.ndarray | None  # (H, W, 3) uint8 BGR; None when the frame could not be decoded
    decode_ms: float


class VideoReader:
    """An opened video and the frames its ``Sampling`` selects. Opening checks it; ``frames()`` reads it."""

    def __init__(self, path: str | os.PathLike, sampling: Sampling, *, max_pixels: int | None):
        import cv2

        self.path = os.fspath(path)
        self.sampling = sampling
        if not os.path.exists(self.path):
            raise InputError(self.path, "no such file")
        if os.path.isdir(self.path):
            raise InputError(self.path, "is a folder, not a file")
        if os.path.getsize(self.path) == 0:
            raise InputError(self.path, "empty file")
        cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            cap.release()
            raise InputError(self.path, "not a readable video (the decoder cannot open it)")
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and math.isfinite(fps) and fps > 0 else None
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None
        if self.width <= 0 or self.height <= 0:
            cap.release()
            raise InputError(self.path, "not a readable video (no frame size in its stream)")
        if max_pixels is not None and self.width * self.height > max_pixels:
            cap.release()
            raise InputError(self.path, "frames of " + too_large(self.width, self.height, max_pixels))
        self._cap = cap
        self.frames_read = 0

    def frames(self, skip: Mapping[int, float] | frozenset = frozenset()) -> Iterator[RawFrame]:
        """Sampled frames in order; frames in ``skip`` are selected but not decoded (their result is known)."""
        import cv2

        cap, self._cap = self._cap, None
        if cap is None:
            raise FakeLocatorError(f"{self.path}: frames() can be called once")
        s = self.sampling
        taken, index, next_time = 0, -1, 0.0
        try:
            while s.max_frames is None or taken < s.max_frames:
                t0 = time.perf_counter()
                if not cap.grab():
                    break
                index += 1
                self.frames_read = index + 1
                t = index / self.fps if self.fps else cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if s.every is not None:
                    selected = index % s.every == 0
                elif s.fps is not None:
                    selected = t + 1e-9 >= next_time
                    if selected:
                        next_time = (math.floor(t * s.fps + 1e-9) + 1) / s.fps
                else:
                    selected = True
                if not selected:
                    continue
                taken += 1
                if index in skip:
                    continue
                ok, image = cap.retrieve()
                good = ok and image is not None and image.size > 0
                yield RawFrame(index, t, image if good else None, (time.perf_counter() - t0) * 1000)
        finally:
            cap.release()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class VideoResults:
    """Per-frame results of one video, as an iterator, and its ``summary`` once read.

    Iterate it once. ``summary`` is available at any time: it first consumes (and discards) the
    frames not yet iterated. Use it as a context manager, or call ``close()``, to stop early.

    Args:
        known: {frame: score or None} of frames whose results are already known (e.g. recorded by
            an interrupted run; None for a frame that failed); they are not decoded again, and
            count in the summary.
        known_empty: frames already known to have had nothing to analyse (``empty_frames``).
        regions: the region provider for this video's frames (None: whole frames).
    """

    def __init__(
        self,
        locator: "Locator",
        reader: VideoReader,
        *,
        on_error: str = "record",
        keep_images: bool = False,
        top_k: int = 5,
        verdict_by: str = "p95",
        known: Mapping[int, float] | None = None,
        known_empty: Iterable[int] = (),
        regions=None,
    ):
        if verdict_by not in VERDICT_STATISTICS:
            raise FakeLocatorError(f"verdict_by must be one of {VERDICT_STATISTICS}, got {verdict_by!r}")
        self._locator = locator
        self._reader = reader
        self._on_error = on_error
        self._keep_images = keep_images
        self._top_k = top_k
        self._verdict_by = verdict_by
        known = dict(known or {})
        self._scores: dict[int, float] = {f: s for f, s in known.items() if s is not None}
        self._empty = set(known_empty)
        self._known = frozenset(known) | frozenset(self._empty)
        self._failed = sum(s is None for s in known.values())
        self._regions = regions
        self._error: str | None = None
        self._iterator: Iterator[FrameResult] | None = None
        self._summary: VideoSummary | None = None

    path = property(lambda self: self._reader.path)
    fps = property(lambda self: self._reader.fps)
    width = property(lambda self: self._reader.width)
    height = property(lambda self: self._reader.height)
    frame_count = property(lambda self: self._reader.frame_count)

    def __iter__(self) -> Iterator[FrameResult]:
        if self._iterator is not None:
            raise FakeLocatorError(f"{self.path}: a video's results can be iterated once")
        self._iterator = self._run()
        return self._iterator

    def _run(self) -> Iterator[FrameResult]:
        frames = self._reader.frames(skip=self._known)
        results = self._locator._run_frames(
            self.path, frames, on_error=self._on_error, keep_images=self._keep_images, regions=self._regions
        )
        try:
            for result in results:
                if result.error is not None:
                    self._failed += 1
                elif result.regions == []:  # nothing to analyse (no face): not a score
                    self._empty.add(result.frame)
                else:
                    self._scores[result.frame] = result.score
                yield result
        finally:
            results.close()
        if not self._scores and not self._failed and not self._empty:
            self._error = "no decodable frames"
            if self._on_error == "raise":
                raise InputError(self.path, self._error)

    @property
    def summary(self) -> VideoSummary:
        if self._summary is None:
            if self._iterator is None:
                iter(self)
            for _ in self._iterator:
                pass
            self._summary = summarize(
                self.path,
                self._scores,
                threshold=self._locator.threshold,
                top_k=self._top_k,
                verdict_by=self._verdict_by,
                failed_frames=self._failed,
                empty_frames=len(self._empty),
                fps=self.fps,
                frame_count=self.frame_count,
                width=self.width,
                height=self.height,
                frames_read=self._reader.frames_read,
                error=self._error,
            )
        return self._summary

    def close(self) -> None:
        if self._iterator is not None:
            self._iterator.close()
        self._reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
