"""What ``trt-locate`` writes under ``--out DIR``, and how it writes it.

    DIR/results.jsonl                       one JSON object per image, sampled frame, and video
    DIR/maps/<key>.png                      an image's map: 8- or 16-bit gray, the image's size
    DIR/maps/<key>/<frame:06d>.png          a video frame's map
    DIR/overlays/<key>.jpg                  with --overlay (and <key>/<frame:06d>.jpg for frames)

    DIR/.trt-locate.lock                    held (flock) by the run that owns DIR; holds its PID

Every file is written to a temporary name in its folder and renamed into place, so a map that
exists is complete; ``results.jsonl`` is appended one line at a time (one ``write`` each), and a
record is appended only after its files are in place. A run killed at any point therefore leaves
complete records for completed inputs, at most one partial last line (removed by ``--resume``) and
possibly hidden ``.trt-locate-*.tmp`` files (removed by ``--resume``).

One run at a time owns DIR: ``OutputLock`` takes an advisory lock (``fcntl.flock``) on
``DIR/.trt-locate.lock`` before anything is read or written there, and a second run on the same
DIR stops at once with a message naming the first one's PID (the lock goes with the process, so a
killed run never leaves DIR locked).

``--resume`` reads the journal line by line: a line that is not a complete trt-locate record (torn
by a crash, written by another program, hand-edited) is skipped and reported, never fatal; its
input is simply processed again. Nothing else in the file is removed: new records are appended
after it (after a newline, when a complete last record lacks one).

A write that fails for a reason of the output folder (disk full, quota, read-only, permissions)
ends the run with ``OutputError`` (one line, exit status 2) instead of recording every later input
as failed: the journal keeps every complete record, so ``--resume`` continues once there is room.
"""

from __future__ import annotations

import errno
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.files import atomic_write_bytes
from fakelocator.runtime.levels import map_levels

RESULTS = "results.jsonl"
MAPS = "maps"
OVERLAYS = "overlays"
TMP_PREFIX = ".trt-locate-"
LOCK = ".trt-locate.lock"

#: errno values that say the output folder cannot take more writes, whatever the input.
OUTPUT_FOLDER_ERRORS = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EFBIG", "EIO") if hasattr(errno, name)
)


class OutputError(FakeLocatorError):
    """The output folder cannot be written (disk full, read-only, permissions, ...): the run stops."""


def output_error(what: str | Path, e: OSError) -> OutputError:
    reason = e.strerror or str(e)
    return OutputError(f"cannot write {what}: {reason}")


def is_output_folder_error(e: OSError) -> bool:
    return e.errno in OUTPUT_FOLDER_ERRORS


class OutputLock:
    """The advisory lock that makes one run the owner of an output folder (see the module docstring)."""

    def __init__(self, root: Path):
        import fcntl

        self.path = root / LOCK
        try:
            root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as e:
            raise output_error(f"to --out {root}", e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                other = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise FakeLocatorError(
                f"--out {root} is in use by another trt-locate run (pid {other}); wait for it to finish, "
                "or choose another --out"
            ) from None
        except OSError as e:
            os.close(fd)
            raise output_error(self.path, e) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the lock holds without the PID in it (e.g. disk full): the message then says unknown
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> "OutputLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def results(self) -> Path:
        return self.root / RESULTS

    def map_path(self, key: str, frame: int | None = None) -> Path:
        return self.root / MAPS / (f"{key}.png" if frame is None else f"{key}/{frame:06d}.png")

    def overlay_path(self, key: str, frame: int | None = None) -> Path:
        return self.root / OVERLAYS / (f"{key}.jpg" if frame is None else f"{key}/{frame:06d}.jpg")

    def relative(self, path: Path) -> str:
        """How records name an output file: relative to DIR, with forward slashes."""
        return path.relative_to(self.root).as_posix()

    def remove_temporaries(self) -> int:
        """Delete temporary files a killed run left behind; returns how many."""
        removed = 0
        for sub in (MAPS, OVERLAYS):
            for dirpath, _, filenames in os.walk(self.root / sub):
                for name in filenames:
                    if name.startswith(TMP_PREFIX) and name.endswith(".tmp"):
                        os.unlink(os.path.join(dirpath, name))
                        removed += 1
        return removed


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    atomic_write_bytes(path, data, prefix=TMP_PREFIX)


def encode_map(map_full: np.ndarray, depth: int = 8) -> bytes:
    """(H, W) float map in [0, 1] → PNG bytes of its levels (``levels.map_levels``: half up, NaN → 0),
    8- or 16-bit gray. A uint8 map is taken as its 8-bit levels already (the pipeline's uint8 path)."""
    import cv2

    if map_full.dtype == np.uint8:
        if depth != 8:
            raise FakeLocatorError(f"a map of 8-bit levels cannot be written at depth {depth}")
        levels = map_full
    else:
        levels = map_levels(map_full, depth=depth)
    ok, buf = cv2.imencode(".png", levels)
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def encode_jpeg(image_bgr: np.ndarray, quality: int = 90) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError("JPEG encoding failed")
    return buf.tobytes()


def read_map(path: str | Path) -> np.ndarray:
    """A written map back as float32 in [0, 1] (8- or 16-bit PNG)."""
    import cv2

    levels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if levels is None:
        raise FakeLocatorError(f"{path}: not a readable map")
    return levels.astype(np.float32) / (65535.0 if levels.dtype == np.uint16 else 255.0)


@dataclass
class VideoProgress:
    """What an earlier run recorded for one video."""

    frames: dict[int, float | None] = field(default_factory=dict)  # frame → score (None: failed)
    empty: set[int] = field(default_factory=set)  # frames with nothing to analyse (no face)
    tiles: int = 0  # network inputs the recorded frames took
    summary: dict[str, Any] | None = None


@dataclass
class Recorded:
    """The records of an earlier run, by input path."""

    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    videos: dict[str, VideoProgress] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # output key → the input path whose maps are under it

    def add_key(self, record: dict[str, Any]) -> None:
        """Note the output key a record's map is under (``maps/<key>.png``, ``maps/<key>/<frame>.png``)."""
        where = record.get("map")
        if not isinstance(where, str) or not where.startswith(MAPS + "/") or not where.endswith(".png"):
            return
        key = where[len(MAPS) + 1:-len(".png")]
        if record["kind"] == "frame":
            key = key.rpartition("/")[0]
        if key:
            self.keys.setdefault(key, record["path"])

    def done(self, path: str, kind: str) -> bool:
        if kind == "image":
            return path in self.images
        progress = self.videos.get(path)
        return progress is not None and progress.summary is not None


@dataclass(frozen=True)
class BadLine:
    """A journal line ``--resume`` skipped: its 1-based number and why."""

    number: int
    reason: str


def _check_record(record: object) -> str | None:
    """Why ``record`` is not a usable trt-locate record, or None."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not a record"
    kind, path = record.get("kind"), record.get("path")
    if kind not in ("image", "frame", "video"):
        return f"unknown kind {kind!r}" if "kind" in record else "no kind"
    if not isinstance(path, str) or not path:
        return f"path is {type(path).__name__}, not a string" if "path" in record else "no path"
    error = record.get("error")
    if error is not None and not isinstance(error, str):
        return "error is not a string"
    score = record.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        return "score is not a number"
    if kind == "frame":
        frame = record.get("frame")
        if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
            return "a frame record without a frame index"
        if error is None and score is None and record.get("regions") != []:
            return "a frame record without a score or an error"
    if kind == "image" and error is None and score is None and record.get("regions") != []:
        return "an image record without a score or an error"
    if kind == "video" and error is None and not isinstance(record.get("summary"), dict):
        return "a video record without a summary"
    return None


class Journal:
    """``results.jsonl``: appended one record (one line, one ``write``) at a time.

    ``bad_lines`` lists the lines ``--resume`` skipped (see the module docstring).
    """

    def __init__(self, path: Path, *, resume: bool = False, overwrite: bool = False):
        self.path = path
        self.recorded = Recorded()
        self.bad_lines: list[BadLine] = []
        self.records = 0  # complete records written by this run
        if path.is_dir():
            raise FakeLocatorError(f"{path} is a folder, not a results file; move it away or choose another --out")
        if path.exists() and not (resume or overwrite):
            raise FakeLocatorError(
                f"{path} exists: pass --resume to continue that run, or --overwrite to start over"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            needs_newline = False
            if resume and path.exists():
                self.recorded, needs_newline = self._load()
            flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | (os.O_APPEND if resume else os.O_TRUNC)
            self._fd: int | None = os.open(path, flags, 0o666)
            self._size = os.fstat(self._fd).st_size
            if needs_newline:  # end the cut-off last line, keeping its bytes, so the next record starts a line
                self._append(b"\n")
        except OSError as e:
            raise output_error(path, e) from None

    def _load(self) -> tuple[Recorded, bool]:
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise FakeLocatorError(f"{self.path}: cannot be read to resume from ({e.strerror or e})") from None
        lines = data.split(b"\n")
        cut = lines[-1] != b""  # no newline at the end: the last line was being written when the run died
        recorded = Recorded()
        good, torn = 0, None
        for number, line in enumerate(lines[:-1] if not cut else lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (UnicodeDecodeError, ValueError):
                if cut and number == len(lines) and line.startswith(b'{"kind":"'):  # a killed run's last write
                    torn = BadLine(number, "cut off by a killed run (removed)")
                else:
                    self.bad_lines.append(BadLine(number, "not JSON"))
                continue
            reason = _check_record(record)
            if reason is not None:
                self.bad_lines.append(BadLine(number, reason))
                continue
            good += 1
            kind, path = record["kind"], record["path"]
            recorded.add_key(record)
            if kind == "image":
                recorded.images[path] = record
            elif kind == "frame":
                progress = recorded.videos.setdefault(path, VideoProgress())
                tiles = record.get("tiles")
                progress.tiles += tiles if isinstance(tiles, int) and not isinstance(tiles, bool) and tiles > 0 else 0
                if record.get("error") is None and record.get("regions") == []:
                    progress.empty.add(record["frame"])
                else:
                    progress.frames[record["frame"]] = record["score"] if record.get("error") is None else None
            else:
                recorded.videos.setdefault(path, VideoProgress()).summary = record
        if not good and self.bad_lines:  # nothing of ours in it: leave it alone
            raise FakeLocatorError(
                f"{self.path} has no trt-locate record in it ({len(self.bad_lines)} line(s), the first one "
                f"{self.bad_lines[0].reason}): not a results file to resume; move it away, or use --overwrite"
            )
        if torn is not None:
            self._drop_tail(len(data) - len(lines[-1]))
            self.bad_lines.append(torn)
            cut = False
        return recorded, cut

    def _drop_tail(self, keep: int) -> None:
        try:
            with open(self.path, "r+b") as f:
                f.truncate(keep)
        except OSError as e:
            raise output_error(self.path, e) from None

    def describe_bad_lines(self, limit: int = 5) -> str:
        """One line about the skipped lines, e.g. for stderr."""
        shown = "; ".join(f"line {b.number}: {b.reason}" for b in self.bad_lines[:limit])
        more = f"; and {len(self.bad_lines) - limit} more" if len(self.bad_lines) > limit else ""
        return (
            f"{self.path}: skipped {len(self.bad_lines)} line(s) that are not complete trt-locate records "
            f"({shown}{more}); their inputs are processed again"
        )

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            raise FakeLocatorError(f"{self.path}: the journal is closed")
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as e:
            # Take back a partial line, so the file still ends with a complete record.
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            raise output_error(self.path, e) from None
        self._size += len(data)

    def write(self, record: dict[str, Any]) -> str:
        line = json.dumps(_finite(record), separators=(",", ":"), allow_nan=False)
        self._append((line + "\n").encode("utf-8"))
        self.records += 1
        return line

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _finite(value):
    """JSON has no NaN: non-finite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
