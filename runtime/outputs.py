"""What ``trt-locate`` writes under ``--out DIR``, and how it writes it.

    DIR/results.jsonl                       one JSON object per image, sampled frame, and video
    DIR/maps/<key>.png                      an image's map: 8- or 16-bit gray, the image's size
    DIR/maps/<key>/<frame:06d>.png          a video frame's map
    DIR/overlays/<key>.jpg                  with --overlay (and <key>/<frame:06d>.jpg for frames)

Every file is written to a temporary name in its folder and renamed into place, so a map that
exists is complete; ``results.jsonl`` is appended one line at a time, flushed after each, and a
record is appended only after its files are in place. A run killed at any point therefore leaves
complete records for completed inputs, at most one partial last line (dropped by ``--resume``) and
possibly hidden ``.trt-locate-*.tmp`` files (removed by ``--resume``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.files import atomic_write_bytes

RESULTS = "results.jsonl"
MAPS = "maps"
OVERLAYS = "overlays"
TMP_PREFIX = ".trt-locate-"


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
    """(H, W) float map in [0, 1] → PNG bytes of ``floor(map * (2**depth - 1) + 0.5)``, 8- or 16-bit gray."""
    import cv2

    if depth not in (8, 16):
        raise FakeLocatorError(f"map depth must be 8 or 16, got {depth}")
    top = np.float32(255 if depth == 8 else 65535)
    levels = np.floor(np.clip(map_full, 0.0, 1.0) * top + np.float32(0.5)).astype(np.uint8 if depth == 8 else np.uint16)
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
    summary: dict[str, Any] | None = None


@dataclass
class Recorded:
    """The records of an earlier run, by input path."""

    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    videos: dict[str, VideoProgress] = field(default_factory=dict)

    def done(self, path: str, kind: str) -> bool:
        if kind == "image":
            return path in self.images
        progress = self.videos.get(path)
        return progress is not None and progress.summary is not None


class Journal:
    """``results.jsonl``: appended and flushed one record at a time."""

    def __init__(self, path: Path, *, resume: bool = False, overwrite: bool = False):
        self.path = path
        self.recorded = Recorded()
        if path.exists() and not (resume or overwrite):
            raise FakeLocatorError(
                f"{path} exists: pass --resume to continue that run, or --overwrite to start over"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume and path.exists():
            self.recorded = self._load()
        self._file = open(path, "a" if resume else "w", encoding="utf-8")

    def _load(self) -> Recorded:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a partial line from a killed run
            with open(self.path, "r+b") as f:
                f.truncate(end)
        recorded = Recorded()
        for number, line in enumerate(data[:end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                kind, path = record["kind"], record["path"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise FakeLocatorError(f"{self.path}:{number}: not a trt-locate record; cannot resume from it") from None
            if kind == "image":
                recorded.images[path] = record
            elif kind == "frame":
                progress = recorded.videos.setdefault(path, VideoProgress())
                if record.get("error") is None and record.get("regions") == []:
                    progress.empty.add(record["frame"])
                else:
                    progress.frames[record["frame"]] = record["score"] if record.get("error") is None else None
            elif kind == "video":
                recorded.videos.setdefault(path, VideoProgress()).summary = record
        return recorded

    def write(self, record: dict[str, Any]) -> str:
        line = json.dumps(_finite(record), separators=(",", ":"), allow_nan=False)
        self._file.write(line + "\n")
        self._file.flush()
        return line

    def close(self) -> None:
        self._file.close()


def _finite(value):
    """JSON has no NaN: non-finite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
