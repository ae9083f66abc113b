"""Face crops for the runtime: detect faces, analyse each face with a margin, paste the maps back.

    from fakelocator.runtime import Locator
    from fakelocator.runtime.faces import FaceOptions

    locator = Locator.load("model.onnx", faces=True)                   # every image and frame
    video = locator.locate_video("clip.mp4", fps=2, faces=FaceOptions(margin=0.4, fallback="frame"))

``FaceRegions`` is a region provider (``fakelocator.runtime.regions``): for each image it returns
one crop per detected face (the face's box grown by ``margin`` on every side and made square, then
kept inside the image) and the detections themselves, which results report as ``faces``. The
pipeline runs each crop through the network and pastes its map back at the crop's place (the
frame's map is the per-pixel maximum over faces, zero elsewhere); the score is the highest face's.

Without a face: ``fallback="frame"`` (default) analyses the whole image as if faces were off
(``faces == []`` says none was found, and the record's ``analysed`` is ``"image"``): an image
without a detected face is not thereby real. ``fallback="none"`` analyses nothing (zero map, score
0, label "real", ``analysed == "nothing"``; a video counts the frame in ``summary.empty_frames``,
not in its statistics).

Detectors: MediaPipe's BlazeFace converted to ONNX, shipped in the package and run on onnxruntime
(``blazeface.py``; the default), facexlib's RetinaFace when ``weights`` are given, or, as a
fallback, the LBP cascade that ships inside scikit-image (``face_detectors.py``; ``pip install
'fakelocator[faces]'``). Nothing heavy is imported until a provider is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.regions import RegionProposal
from fakelocator.runtime.results import Box, Face

DETECTORS = ("auto", "blazeface", "blazeface-short", "lbp", "retinaface")
FALLBACKS = ("none", "frame")


class FaceDetector(Protocol):
    name: str

    def detect(self, image: np.ndarray, color_order: str) -> list[Face]: ...


@dataclass(frozen=True)
class FaceOptions:
    """How faces are found and cropped.

    Args:
        detector: ``auto`` (RetinaFace when ``weights`` are given, else BlazeFace), ``blazeface``
            (MediaPipe's full-range model: faces down to ~1/20 of a view, tiles for smaller ones),
            ``blazeface-short`` (the short-range model: close-up faces), ``lbp`` (scikit-image's
            frontal-face cascade, the former default) or ``retinaface``.
        weights: RetinaFace weights (``detection_Resnet50_Final.pth`` or
            ``detection_mobilenet0.25_Final.pth`` from facexlib's releases); never downloaded.
        device: where BlazeFace (onnxruntime) or RetinaFace (torch) runs: "auto", "cpu", "cuda", "cuda:N".
        margin: each side of a face's box grows by ``margin`` × the box's longer side before cropping
            (0.3: a 100-pixel face gives a 160-pixel crop), so the crop shows the face's edges and
            some hair and background, as training images do.
        min_size: smallest face searched, as a fraction of the image's shorter side (BlazeFace: tiles
            are added when the whole image would make such a face too small; LBP: the search's scale).
        threshold: the lowest detector score kept; None: the detector's default (BlazeFace and LBP
            0.5, RetinaFace 0.8).
        max_faces: analyse at most this many faces per image (the highest-scoring); None: all.
        fallback: without a face, ``frame`` (default) analyses the whole image, ``none`` nothing.
    """

    detector: str = "auto"
    weights: str | None = None
    device: str = "auto"
    margin: float = 0.3
    min_size: float = 0.1
    threshold: float | None = None
    max_faces: int | None = None
    fallback: str = "frame"

    def __post_init__(self):
        if self.detector not in DETECTORS:
            raise FakeLocatorError(f"face detector must be one of {', '.join(DETECTORS)}, got {self.detector!r}")
        if self.detector == "retinaface" and not self.weights:
            raise FakeLocatorError("the retinaface detector needs its weights file (--face-weights)")
        if self.fallback not in FALLBACKS:
            raise FakeLocatorError(f"faces fallback must be one of {', '.join(FALLBACKS)}, got {self.fallback!r}")
        if not self.margin >= 0:
            raise FakeLocatorError(f"face margin must be >= 0, got {self.margin}")
        if not 0 < self.min_size <= 1:
            raise FakeLocatorError(f"face min_size must be in (0, 1], got {self.min_size}")
        if self.max_faces is not None and self.max_faces < 1:
            raise FakeLocatorError(f"max_faces must be >= 1, got {self.max_faces}")
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise FakeLocatorError(f"face threshold must be in [0, 1], got {self.threshold}")

    def build_detector(self) -> FaceDetector:
        kind = self.detector if self.detector != "auto" else ("retinaface" if self.weights else "blazeface")
        extra = {} if self.threshold is None else {"threshold": self.threshold}
        if kind.startswith("blazeface"):
            from fakelocator.runtime.blazeface import BlazeFaceDetector

            model = "short" if kind == "blazeface-short" else "full"
            return BlazeFaceDetector(model, min_size=self.min_size, device=self.device, **extra)
        from fakelocator.runtime.face_detectors import LBPCascadeDetector, RetinaFaceDetector

        if kind == "retinaface":
            return RetinaFaceDetector(os.fspath(self.weights), device=self.device, **extra)
        return LBPCascadeDetector(min_size=self.min_size, **extra)


def crop_box(box, width: int, height: int, margin: float) -> Box:
    """The square crop around a face box: side = longer side × (1 + 2 × margin), centred on the box,
    shifted (not shrunk) to stay inside the image, and clipped only when larger than the image."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2

    def span(centre: float, limit: int) -> tuple[int, int]:
        size = min(max(1, round(side)), limit)
        start = round(centre - side / 2)
        start = min(max(start, 0), limit - size)
        return start, start + size

    (cx0, cx1), (cy0, cy1) = span(cx, width), span(cy, height)
    return cx0, cy0, cx1, cy1


def clip_face(box, width: int, height: int) -> Box:
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    return max(0, min(x0, width)), max(0, min(y0, height)), max(0, min(x1, width)), max(0, min(y1, height))


class FaceRegions:
    """A region provider that analyses faces; see the module docstring.

    Args:
        detector: anything with ``detect(image, color_order) -> list[Face]`` (best first).
        margin, max_faces, fallback: see ``FaceOptions``.
    """

    def __init__(self, detector: FaceDetector, *, margin: float = 0.3, max_faces: int | None = None, fallback: str = "frame"):
        if fallback not in FALLBACKS:
            raise FakeLocatorError(f"faces fallback must be one of {', '.join(FALLBACKS)}, got {fallback!r}")
        self.detector = detector
        self.margin = margin
        self.max_faces = max_faces
        self.fallback = fallback

    @classmethod
    def from_options(cls, options: FaceOptions) -> "FaceRegions":
        return cls(options.build_detector(), margin=options.margin, max_faces=options.max_faces, fallback=options.fallback)

    def __call__(self, image: np.ndarray, color_order: str, index: int) -> RegionProposal:
        height, width = image.shape[:2]
        faces = []
        for face in self.detector.detect(image, color_order):
            box = clip_face(face.box, width, height)
            if box[2] > box[0] and box[3] > box[1]:
                faces.append(Face(box, float(face.score)))
        faces.sort(key=lambda f: -f.score)
        if self.max_faces is not None:
            faces = faces[: self.max_faces]
        if not faces:
            return RegionProposal(None if self.fallback == "frame" else [], [])
        return RegionProposal([crop_box(f.box, width, height, self.margin) for f in faces], faces)
