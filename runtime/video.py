"""Videos: frame sampling, and the iterable of per-frame results that ends in a summary.

    video = locator.locate_video("clip.mp4", fps=2)     # a path, bytes, or a binary file object
    for frame in video:          # FrameResult, as soon as its batch is done
        ...
    print(video.summary)         # VideoSummary; reads the rest of the video first if needed

Decoding uses PyAV (FFmpeg's libraries) when it is installed (the ``runtime`` extra installs it):
it reads bytes and file-like objects as well as paths (uploads arrive as streams), gives each
frame's presentation time from the container (variable-frame-rate video is common, and frame
index / fps is wrong for it), reports a frame that fails to decode and goes on to the next, and
keeps FFmpeg's messages off stderr. Without PyAV, OpenCV's ``VideoCapture`` reads paths only, with
timestamps from the container's nominal frame rate.

Rotation: a frame is turned upright by its display matrix (the rotation a phone records for a
portrait video stored landscape), as players show it, so frames, maps and ``width``/``height`` are
those of the displayed picture, as images follow their EXIF orientation. Only the rotation (a
multiple of 90 degrees) is applied; a mirroring matrix is rare and is not. OpenCV's reader (no
PyAV) applies the rotation itself.

Sampling: ``every=N`` takes frames 0, N, 2N, …; ``fps=F`` takes the first frame at or after each
multiple of 1/F seconds of presentation time; neither takes every frame. ``max_frames`` stops after
that many sampled frames. Frames that are not sampled are decoded (later frames depend on them) but
not converted to images.

A frame that cannot be decoded becomes a failed frame (``RawFrame.error``); a video that ends
before the frame count (or duration) its container declares, or whose container cannot be read to
the end, gets ``VideoReader.error``, which becomes its summary's ``error``.
"""

from __future__ import annotations

import io
import math
import os
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Iterable, Iterator, Mapping, Union

import numpy as np

from fakelocator.errors import FakeLocatorError, InputError
from fakelocator.runtime.decode import open_regular, too_large
from fakelocator.runtime.results import VERDICT_STATISTICS, FrameResult, VideoSummary, summarize

if TYPE_CHECKING:
    from fakelocator.runtime.locator import Locator
    from fakelocator.runtime.regions import RegionProvider

#: What ``locate_video`` reads: a path, the encoded bytes, or a binary file object (read, seek).
VideoSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]

DECODERS = ("auto", "pyav", "opencv")


def has_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def source_name(source: object) -> str:
    """How messages and records name a video source."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    name = getattr(source, "name", None)
    return name if isinstance(name, str) and name else "<stream>"


def _clean(message: object) -> str:
    """A decoder's message on one printable line (a hostile file can put raw bytes in it)."""
    text = " ".join(str(message).split())
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text[:200]


#: The highest sampling rate accepted; any rate over a video's own takes every frame (and rates
#: like 1e308 would overflow the sampling arithmetic).
MAX_FPS = 1e6


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
        if self.fps is not None and not (isinstance(self.fps, (int, float)) and 0 < self.fps <= MAX_FPS):
            raise FakeLocatorError(f"fps must be a number in (0, {MAX_FPS:g}], got {self.fps!r}")
        if self.max_frames is not None and self.max_frames < 1:
            raise FakeLocatorError(f"max_frames must be >= 1, got {self.max_frames}")


class _Selector:
    """Which frames ``Sampling`` takes, frame by frame, from their index and presentation time."""

    def __init__(self, sampling: Sampling):
        self.s = sampling
        self.next_time = 0.0

    def __call__(self, index: int, t: float | None) -> bool:
        s = self.s
        if s.every is not None:
            return index % s.every == 0
        if s.fps is not None:
            t = 0.0 if t is None else t
            if t + 1e-9 < self.next_time:
                return False
            self.next_time = (math.floor(t * s.fps + 1e-9) + 1) / s.fps
        return True


#: Quarter turns counterclockwise → the OpenCV rotation that applies them (0: none).
_TURNS = {1: 2, 2: 1, 3: 0}  # cv2.ROTATE_90_COUNTERCLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_CLOCKWISE


@dataclass
class RawFrame:
    index: int
    time_s: float | None
    image: np.ndarray | None  # (H, W, 3) uint8 BGR; None when the frame could not be decoded
    decode_ms: float
    error: str | None = None  # why ``image`` is None


class VideoReader:
    """An opened video and the frames its ``Sampling`` selects. Opening checks it; ``frames()`` reads it.

    Args:
        source: a path (a regular file), encoded bytes, or a binary file object.
        decoder: "auto" (PyAV when installed, else OpenCV), "pyav" or "opencv" (paths only).
    """

    def __init__(self, source: VideoSource, sampling: Sampling, *, max_pixels: int | None, decoder: str = "auto"):
        if decoder not in DECODERS:
            raise FakeLocatorError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        self.path = source_name(source)
        self.sampling = sampling
        self.max_pixels = max_pixels
        self.error: str | None = None
        self.frames_read = 0
        is_path = isinstance(source, (str, os.PathLike))
        if is_path:
            fd, _ = open_regular(source)  # no FIFOs, devices or folders; not empty
            os.close(fd)
        elif isinstance(source, (bytes, bytearray, memoryview)):
            if not len(source):
                raise InputError(self.path, "empty video data")
            source = io.BytesIO(bytes(source))
        elif not callable(getattr(source, "read", None)):
            raise InputError(
                self.path, f"expected a path, bytes or a binary file object, got {type(source).__name__}"
            )
        if decoder == "auto":
            decoder = "pyav" if has_pyav() else "opencv"
        if decoder == "pyav" and not has_pyav():
            raise FakeLocatorError("decoder pyav: PyAV is not installed (pip install av, or 'fakelocator[runtime]')")
        if decoder == "opencv" and not is_path:
            raise FakeLocatorError(
                f"{self.path}: reading a video from bytes or a file object needs PyAV (pip install av, or "
                "'fakelocator[runtime]'); OpenCV reads paths only"
            )
        self.decoder = decoder
        self._open_pyav(source) if decoder == "pyav" else self._open_opencv(os.fspath(source))
        if self.width <= 0 or self.height <= 0:
            self.close()
            raise InputError(self.path, "not a readable video (no frame size in its stream)")
        if max_pixels is not None and self.width * self.height > max_pixels:
            self.close()
            raise InputError(self.path, "frames of " + too_large(self.width, self.height, max_pixels))

    # ---- PyAV -------------------------------------------------------------------------------------

    def _open_pyav(self, source) -> None:
        import av

        try:
            container = av.open(source, mode="r", metadata_errors="ignore")
        except Exception as e:  # noqa: BLE001 - PyAV raises FFmpegError subclasses, OSError, ValueError...
            raise InputError(self.path, f"not a readable video (the decoder cannot open it: {_clean(e)})") from None
        if not container.streams.video:
            container.close()
            raise InputError(self.path, "not a readable video (no video stream)")
        stream = container.streams.video[0]
        self.width, self.height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate and math.isfinite(float(rate)) and float(rate) > 0 else None
        self.frame_count = int(stream.frames) if stream.frames and stream.frames > 0 else None
        tb = stream.time_base
        self._start = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
        if stream.duration is not None and tb:
            self.duration = float(stream.duration * tb)
        elif container.duration:
            self.duration = container.duration / 1e6
        else:
            self.duration = None
        self._container, self._stream, self._cap = container, stream, None

    def _pyav_frames(self, container, skip) -> Iterator[RawFrame]:
        stream = self._stream
        s, select = self.sampling, _Selector(self.sampling)
        taken, index, last_t, stopped = 0, -1, None, False
        tb = stream.time_base
        try:
            packets = container.demux(stream)
            while True:
                if s.max_frames is not None and taken >= s.max_frames:
                    stopped = True
                    break
                t0 = time.perf_counter()
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except Exception as e:  # noqa: BLE001 - a container cut off or corrupt mid-way
                    self.error = f"cannot be read past frame {index + 1} ({_clean(e)})"
                    break
                try:
                    decoded = packet.decode()
                except Exception as e:  # noqa: BLE001 - one undecodable frame: recorded, reading goes on
                    if not packet.size:
                        continue
                    index += 1
                    self.frames_read = index + 1
                    t = float(packet.pts * tb) - self._start if packet.pts is not None and tb else self._index_time(index)
                    if index not in skip:
                        yield RawFrame(index, t, None, (time.perf_counter() - t0) * 1000,
                                       error=f"frame {index} could not be decoded ({_clean(e)})")
                    continue
                for frame in decoded:
                    index += 1
                    self.frames_read = index + 1
                    t = frame.time - self._start if frame.time is not None else self._index_time(index)
                    last_t = t
                    if not select(index, t):
                        continue
                    taken += 1
                    if index in skip:
                        continue
                    if self.max_pixels is not None and frame.width * frame.height > self.max_pixels:
                        yield RawFrame(index, t, None, 0.0, error=f"frame {index}: " + too_large(frame.width, frame.height, self.max_pixels))
                    else:
                        try:
                            image = self._upright(frame.to_ndarray(format="bgr24"), frame)
                        except Exception as e:  # noqa: BLE001
                            yield RawFrame(index, t, None, (time.perf_counter() - t0) * 1000,
                                           error=f"frame {index} could not be converted ({_clean(e)})")
                        else:
                            yield RawFrame(index, t, image, (time.perf_counter() - t0) * 1000)
                    if s.max_frames is not None and taken >= s.max_frames:
                        break
                    t0 = time.perf_counter()
        finally:
            container.close()
        if not stopped and self.error is None:
            self.error = self._short(index + 1, last_t)

    def _upright(self, image: np.ndarray, frame) -> np.ndarray:
        """The frame as players show it: turned by its display matrix's rotation (side data the
        container gives, e.g. a phone's portrait video stored landscape), a multiple of 90 degrees.
        The first turned frame makes ``width`` and ``height`` the displayed ones."""
        rotation = getattr(frame, "rotation", 0) or 0  # degrees counterclockwise, in [-180, 180]
        turn = _TURNS.get(int(round(rotation / 90.0)) % 4) if abs(rotation / 90.0 - round(rotation / 90.0)) < 0.01 else None
        if turn is None:
            return image
        import cv2

        image = cv2.rotate(image, turn)
        self.height, self.width = image.shape[:2]
        return image

    def _index_time(self, index: int) -> float | None:
        return index / self.fps if self.fps else None

    def _short(self, read: int, last_t: float | None) -> str | None:
        """Why a video read to its end is incomplete, or None."""
        if self.frame_count is not None and read < self.frame_count:
            return f"ends after {read} of its {self.frame_count} declared frames (truncated or corrupt)"
        if self.frame_count is None and self.duration and last_t is not None:
            if last_t < self.duration - max(1.0, 0.1 * self.duration):
                return f"ends at {last_t:.2f} s of its declared {self.duration:.2f} s (truncated or corrupt)"
        return None

    # ---- OpenCV (no PyAV) ---------------------------------------------------------------------------

    def _open_opencv(self, path: str) -> None:
        import cv2

        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            cap.release()
            raise InputError(self.path, "not a readable video (the decoder cannot open it)")
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and math.isfinite(fps) and fps > 0 else None
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None
        self.duration = None
        self._cap, self._container = cap, None

    def _opencv_frames(self, cap, skip) -> Iterator[RawFrame]:
        import cv2

        s, select = self.sampling, _Selector(self.sampling)
        taken, index, stopped = 0, -1, False
        try:
            while True:
                if s.max_frames is not None and taken >= s.max_frames:
                    stopped = True
                    break
                t0 = time.perf_counter()
                if not cap.grab():
                    break
                index += 1
                self.frames_read = index + 1
                t = index / self.fps if self.fps else cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if not select(index, t):
                    continue
                taken += 1
                if index in skip:
                    continue
                ok, image = cap.retrieve()
                good = ok and image is not None and image.size > 0
                yield RawFrame(index, t, image if good else None, (time.perf_counter() - t0) * 1000,
                               error=None if good else f"frame {index} could not be decoded")
        finally:
            cap.release()
        if not stopped:
            self.error = self._short(index + 1, None)

    # ---- both ---------------------------------------------------------------------------------------

    def frames(self, skip: Mapping[int, float] | frozenset = frozenset()) -> Iterator[RawFrame]:
        """Sampled frames in order; frames in ``skip`` are selected but not decoded (their result is known)."""
        handle = self._container if self.decoder == "pyav" else self._cap
        if handle is None:
            raise FakeLocatorError(f"{self.path}: frames() can be called once")
        self._cap = self._container = None
        return self._pyav_frames(handle, skip) if self.decoder == "pyav" else self._opencv_frames(handle, skip)

    def close(self) -> None:
        cap, container = getattr(self, "_cap", None), getattr(self, "_container", None)
        self._cap = self._container = None
        if cap is not None:
            cap.release()
        if container is not None:
            container.close()


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
        map_dtype: "float32" or "uint8": the frames' maps, or their 8-bit levels (``Locator.locate``).
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
        known: Mapping[int, float | None] | None = None,
        known_empty: Iterable[int] = (),
        regions: RegionProvider | None = None,
        map_dtype: str = "float32",
    ) -> None:
        if verdict_by not in VERDICT_STATISTICS:
            raise FakeLocatorError(f"verdict_by must be one of {VERDICT_STATISTICS}, got {verdict_by!r}")
        self._locator = locator
        self._reader = reader
        self._on_error = on_error
        self._keep_images = keep_images
        self._map_dtype = map_dtype
        self._top_k = top_k
        self._verdict_by = verdict_by
        known = dict(known or {})
        self._scores: dict[int, float] = {f: s for f, s in known.items() if s is not None}
        self._empty = set(known_empty)
        self._known = frozenset(known) | frozenset(self._empty)
        self._failed = sum(s is None for s in known.values())
        self._regions = regions
        self._tiles = 0
        self._error: str | None = None
        self._iterator: Iterator[FrameResult] | None = None
        self._summary: VideoSummary | None = None

    @property
    def path(self) -> str:
        """The video's path, or ``<bytes>`` / the file object's name."""
        return self._reader.path

    @property
    def fps(self) -> float | None:
        return self._reader.fps

    @property
    def width(self) -> int:
        return self._reader.width

    @property
    def height(self) -> int:
        return self._reader.height

    @property
    def frame_count(self) -> int | None:
        """The frame count the container declares, if it does."""
        return self._reader.frame_count

    def __iter__(self) -> Iterator[FrameResult]:
        if self._iterator is not None:
            raise FakeLocatorError(f"{self.path}: a video's results can be iterated once")
        self._iterator = self._run()
        return self._iterator

    def _run(self) -> Iterator[FrameResult]:
        frames = self._reader.frames(skip=self._known)
        results = self._locator._run_frames(
            self.path, frames, on_error=self._on_error, keep_images=self._keep_images, regions=self._regions,
            map_dtype=self._map_dtype
        )
        try:
            for result in results:
                if result.error is not None:
                    self._failed += 1
                elif result.regions == []:  # nothing to analyse (no face): not a score
                    self._empty.add(result.frame)
                else:
                    self._scores[result.frame] = result.score
                self._tiles += result.tiles or 0
                yield result
        finally:
            results.close()
        if self._reader.error is not None:
            self._error = self._reader.error
        elif not self._scores and not self._failed and not self._empty:
            self._error = "no decodable frames"
        if self._error is not None and self._on_error == "raise":
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
                tiles=self._tiles,
                error=self._error,
            )
        return self._summary

    def close(self) -> None:
        if self._iterator is not None:
            self._iterator.close()
        self._reader.close()

    def __enter__(self) -> "VideoResults":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
