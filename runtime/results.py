"""What the runtime returns: per-image and per-frame results, and a video's summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict, Union

import numpy as np

from fakelocator.metadata import DEFAULT_THRESHOLD
from fakelocator.runtime.levels import map_levels

#: The map level whose bounding box ``bbox`` reports when none is given: the default decision
#: threshold. A ``Locator`` uses its model's threshold (the map is the per-pixel fake probability, so
#: the box is where the model calls the pixels fake).
BBOX_LEVEL = DEFAULT_THRESHOLD
LABELS = ("real", "fake")
VERDICT_STATISTICS = ("p95", "max", "mean")

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in pixels, x1 and y1 exclusive: image[y0:y1, x0:x1]

#: A value in a JSON record (``to_record``): what ``json.dumps`` writes.
JSONValue = Union[None, bool, int, float, str, list["JSONValue"], dict[str, "JSONValue"]]
#: One line of ``results.jsonl``.
Record = dict[str, JSONValue]


class TopFrame(TypedDict):
    """One of a video's highest-scoring frames: ``{"frame": index, "score": score}``, a plain dict,
    exactly as the JSONL record's ``summary.top_frames`` holds it (and as ``json.dumps`` writes it)."""

    frame: int
    score: float


@dataclass
class RegionResult:
    """One analysed region (e.g. a face crop from a region provider) and its own score."""

    box: Box
    score: float


@dataclass(frozen=True)
class Face:
    """A detected face: its (x0, y0, x1, y1) box in image pixels (x1, y1 exclusive) and the
    detector's confidence in [0, 1]."""

    box: Box
    score: float


@dataclass
class LocateResult:
    """The outcome for one image.

    Attributes:
        source: the input's path, or ``<array i>`` / ``<bytes i>`` for in-memory inputs.
        map: (height, width) float32 fakeness in [0, 1] at the image's own resolution; None on error.
        score: probability that the image is fake; None on error.
        label: "fake" when ``score >= threshold``, else "real"; None on error.
        bbox: (x0, y0, x1, y1), x1/y1 exclusive, of the pixels where ``map >= 0.1``; None if none are.
        width, height: the image's size (after EXIF orientation); None when it could not be read.
        timings: milliseconds per stage: ``decode``, ``preprocess``, ``infer``, ``upsample`` in
            ``fit`` analysis, ``decode``, ``tile``, ``infer``, ``stitch`` in ``native`` (and
            ``regions`` with a region provider; the CLI adds ``write``). Batch stages are the batch's
            time divided evenly over the crops in it.
        error: None, or why this input failed (with ``on_error="record"``).
        regions: the analysed regions when a region provider was used, else None.
        faces: the detected faces when faces were detected (``faces=...``), else None; an empty
            list for an image without faces. With face crops, ``regions[i]`` is the crop of ``faces[i]``.
        image: the decoded uint8 (H, W, 3) image when asked for with ``keep_images=True``.
        color_order: the channel order of ``image``.
        outputs: with ``keep_outputs=True``, the network's own outputs for this image before
            upsampling: ``map`` (h, w) float32 at the network's input size and, when the model has
            that output, ``features`` (C,) float32 (the encoder features the classifier reads).
            None otherwise, and when a region provider split the image into crops. In ``native``
            analysis: ``tile_maps`` (n, th, tw), ``tile_scores`` (n,) and ``features`` (the mean
            of the tiles' features).
        tiles: how many network inputs the image took: in ``fit`` analysis one per crop (1 for a
            whole image), in ``native`` analysis its tiles (over all its crops); None on error.
    """

    source: str
    map: np.ndarray | None = field(default=None, repr=False)
    score: float | None = None
    label: str | None = None
    bbox: Box | None = None
    width: int | None = None
    height: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    regions: list[RegionResult] | None = None
    faces: list[Face] | None = None
    image: np.ndarray | None = field(default=None, repr=False)
    color_order: str = "BGR"
    outputs: dict[str, np.ndarray] | None = field(default=None, repr=False)
    tiles: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_record(self) -> Record:
        """The JSON-serializable fields (no arrays)."""
        record: Record = {
            "path": self.source,
            "frame": getattr(self, "frame", None),
            **({"time_s": getattr(self, "time_s")} if isinstance(self, FrameResult) else {}),
            "map": None,  # file names are the writer's to fill in
            "overlay": None,
            "score": self.score,
            "label": self.label,
            "width": self.width,
            "height": self.height,
            "bbox": list(self.bbox) if self.bbox is not None else None,
            "error": self.error,
            "tiles": self.tiles,
            "timings_ms": {k: round(v, 3) for k, v in self.timings.items()},
        }
        if self.regions is not None:
            record["regions"] = [{"box": list(r.box), "score": r.score} for r in self.regions]
        if self.faces is not None:
            record["faces"] = [{"box": [int(v) for v in f.box], "score": round(f.score, 6)} for f in self.faces]
            record["analysed"] = self.analysed
        return record

    @property
    def analysed(self) -> str | None:
        """With face detection: what the score stands for: "faces" (the faces' crops), "image" (no face
        found, the whole image analysed) or "nothing" (no face found, nothing analysed); None without it."""
        if self.faces is None or self.error is not None:
            return None
        if self.faces:
            return "faces"
        return "image" if self.regions is None else "nothing"


@dataclass
class FrameResult(LocateResult):
    """A ``LocateResult`` for one sampled video frame.

    Attributes:
        frame: the frame's index in the video (0-based, counting every frame in decoding order,
            including frames that failed to decode).
        time_s: its presentation time in seconds from the start of the video (from the container's
            timestamps, so right for variable frame rates; index / fps without PyAV). Also in the
            frame's JSON record.
    """

    frame: int = -1
    time_s: float | None = None


@dataclass
class VideoSummary:
    """One video's verdict from its sampled frames' scores.

    Attributes:
        source: the video's path.
        frames: sampled frames with a score; ``failed_frames`` sampled frames that failed;
            ``empty_frames`` sampled frames where the region provider found nothing to analyse (no
            face): recorded with score 0, but left out of the statistics, so a face shown in few
            frames is not averaged away by the frames without one.
        max_score, mean_score, p95_score: statistics of the frame scores (None without frames).
        top_frames: up to ``top_k`` ``{"frame": index, "score": score}`` dicts (``TopFrame``),
            highest score first: the same as in the JSON record.
        verdict_by: which statistic decides the label ("p95" by default: one odd frame does not
            flag a video, a manipulation present in at least 5 % of the sampled frames does).
        label: "fake" when that statistic >= ``threshold``, else "real"; None without frames.
        fps, frame_count, width, height: what the container reports (frame_count may be an estimate).
        frames_read: frames decoded or skipped before reading stopped.
        tiles: network inputs the frames analysed here took, all together (as an image's ``tiles``;
            frames known from an earlier run are not counted; ``trt-locate`` adds what it recorded).
        error: None, or why the video failed as a whole.
    """

    source: str
    frames: int = 0
    failed_frames: int = 0
    empty_frames: int = 0
    max_score: float | None = None
    mean_score: float | None = None
    p95_score: float | None = None
    top_frames: list[TopFrame] = field(default_factory=list)
    threshold: float = DEFAULT_THRESHOLD  # the run's (RunSpec.threshold); summarize_video always sets it
    verdict_by: str = "p95"
    label: str | None = None
    fps: float | None = None
    frame_count: int | None = None
    width: int | None = None
    height: int | None = None
    frames_read: int = 0
    tiles: int = 0
    error: str | None = None

    @property
    def score(self) -> float | None:
        """The statistic the verdict is taken on."""
        return {"p95": self.p95_score, "max": self.max_score, "mean": self.mean_score}[self.verdict_by]

    def to_record(self) -> Record:
        return {
            "path": self.source,
            "frame": None,
            "map": None,
            "overlay": None,
            "score": self.score,
            "label": self.label,
            "width": self.width,
            "height": self.height,
            "bbox": None,
            "error": self.error,
            "timings_ms": {},
            "tiles": self.tiles,
            "summary": {
                "frames": self.frames,
                "failed_frames": self.failed_frames,
                "empty_frames": self.empty_frames,
                "max_score": self.max_score,
                "mean_score": self.mean_score,
                "p95_score": self.p95_score,
                "top_frames": [TopFrame(frame=t["frame"], score=t["score"]) for t in self.top_frames],
                "threshold": self.threshold,
                "verdict_by": self.verdict_by,
                "fps": self.fps,
                "frame_count": self.frame_count,
                "frames_read": self.frames_read,
            },
        }


def label_of(score: float, threshold: float) -> str:
    return "fake" if score >= threshold else "real"


def bbox_of(map_full: np.ndarray, level: float = BBOX_LEVEL) -> Box | None:
    """(x0, y0, x1, y1), exclusive ends, of the pixels where ``map_full >= level``; None if there are none.

    The runtime passes the model's decision threshold as ``level``: the box of the pixels the model
    calls fake, None when it calls none fake (a low level such as 0.1 would box the whole image for
    any model whose map has a floor above it). A uint8 map (the pipeline's 8-bit levels,
    ``levels.map_levels``) is compared with the 8-bit level of ``level``: exactly the float map's pixels
    when ``level`` * 255 ends in .5 (0.5 and 0.1 do), else also those less than half a level below it."""
    if map_full.dtype == np.uint8:
        mask = map_full >= map_levels(np.float32(level))
    else:
        mask = map_full >= level
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def summarize(
    source: str,
    scores: dict[int, float],
    *,
    threshold: float,
    top_k: int = 5,
    verdict_by: str = "p95",
    failed_frames: int = 0,
    **video: int | float | str | None,
) -> VideoSummary:
    """A ``VideoSummary`` from {frame: score}. ``video`` passes fps, frame_count, width, height, frames_read, error."""
    summary = VideoSummary(source, failed_frames=failed_frames, threshold=threshold, verdict_by=verdict_by, **video)
    if not scores:
        return summary
    values = np.fromiter(scores.values(), np.float64, len(scores))
    summary.frames = len(scores)
    summary.max_score = float(values.max())
    summary.mean_score = float(values.mean())
    summary.p95_score = float(np.percentile(values, 95))
    ranked = sorted(scores.items(), key=lambda fs: (-fs[1], fs[0]))
    summary.top_frames = [TopFrame(frame=int(f), score=float(s)) for f, s in ranked[:top_k]]
    summary.label = label_of(summary.score, threshold)
    return summary
