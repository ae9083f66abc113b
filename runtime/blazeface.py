"""BlazeFace face detection (MediaPipe's models, converted to ONNX), decoded in numpy.

The two networks ship in ``fakelocator/weights/faces/`` (Apache-2.0, converted once from
mediapipe 0.10.14's ``.tflite`` files by ``scripts/mediapipe/convert_blazeface.py``):

- ``short``: ``face_detection_short_range`` — 128 × 128 input, 896 anchors, faces that fill a good
  part of the picture (selfies, portraits);
- ``full``: ``face_detection_full_range`` — 192 × 192 input, 2304 anchors (stride 4), faces down to
  about 1/20 of the picture (video frames, group photos).

What MediaPipe's graph does around the network, done here the same way:

1. the image is letterboxed into the network's square (aspect kept, centred, zero border) and
   scaled to [-1, 1] (``ImageToTensorCalculator``);
2. SSD anchors (``SsdAnchorsCalculator``; fixed anchor size, so only centres matter) decode the
   16 raw values of each anchor: box centre and size, then six key points (eyes, nose tip, mouth
   centre, ears), all relative to the anchor in units of the input side; scores are
   sigmoid(clip(logit, ±100)) (``TensorsToDetectionsCalculator``; ±80 here: float32 ``exp``
   overflows past 88, and the sigmoid is 0 or 1 there alike);
3. weighted non-maximum suppression: the best box absorbs every box overlapping it by IoU > 0.3
   and becomes their score-weighted average, keeping its own score (``NonMaxSuppressionCalculator``,
   algorithm WEIGHTED); then the letterbox is undone.

Beyond MediaPipe: a frame larger than the network's view of it is also searched in overlapping
square tiles (``tile_views``) so that faces of ``min_size`` × the shorter side are at least
``MIN_FRACTION`` of a view; every view of every frame goes through the network in one batch,
and detections from all views of a frame are merged by the same weighted suppression.

Torch-free: numpy, OpenCV and onnxruntime (CUDA provider when the device is a GPU).
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.results import Face



def default_weights_dir() -> Path:
    """``fakelocator/weights/faces`` (the package's folder; ``runtime/`` may be a link into it)."""
    import fakelocator

    return Path(fakelocator.__file__).resolve().parent / "weights" / "faces"


@dataclass(frozen=True)
class BlazeFaceModel:
    """One network and its MediaPipe decoding parameters (face_detection_*_range.pbtxt)."""

    file: str
    side: int  # square input side
    strides: tuple[int, ...]  # SSD layers' strides
    anchors_per_layer: int  # 1 aspect ratio + 1 interpolated scale, or 1 alone
    threshold: float = 0.5  # MediaPipe's default min_detection_confidence
    nms_iou: float = 0.3  # min_suppression_threshold

    def anchors(self) -> np.ndarray:
        """float32 (A, 2) anchor centres (x, y) in [0, 1], in the networks' output order."""
        centres = []
        i = 0
        while i < len(self.strides):
            j = i
            while j < len(self.strides) and self.strides[j] == self.strides[i]:
                j += 1  # consecutive layers with one stride share a grid: their anchors interleave per cell
            per_cell = (j - i) * self.anchors_per_layer
            cells = math.ceil(self.side / self.strides[i])
            ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
            grid = np.stack([xs, ys], -1).reshape(-1, 1, 2)
            centres.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
            i = j
        return np.concatenate(centres).astype(np.float32)


MODELS = {
    "short": BlazeFaceModel("blazeface_short_range.onnx", 128, (8, 16, 16, 16), 2),
    "full": BlazeFaceModel("blazeface_full_range.onnx", 192, (4,), 1),
}
#: The smallest face, as a fraction of a view's side, that the search plans for (the full-range
#: model's anchors have a stride of 4 px at 192: faces below ~10 px are missed).
MIN_FRACTION = {"short": 0.15, "full": 0.06}
TILE_OVERLAP = 0.25


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw outputs (N, A, 16), (N, A, 1) → boxes (N, A, 4) (x0, y0, x1, y1), key points (N, A, 6, 2)
    and scores (N, A), all in units of the input square."""
    r = raw_boxes.astype(np.float32) / np.float32(side)
    centre = r[..., 0:2] + anchors
    half = r[..., 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], -1)
    points = r[..., 4:16].reshape(*r.shape[:-1], 6, 2) + anchors[:, None, :]
    return boxes, points, sigmoid(raw_scores[..., 0].astype(np.float32))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) IoU of (n, 4) and (m, 4) boxes (x0, y0, x1, y1)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), -1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-12)


def weighted_nms(boxes: np.ndarray, points: np.ndarray, scores: np.ndarray, iou: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED suppression on one image's candidates (already thresholded), best first.

    The best remaining box takes every remaining box whose IoU with it is above ``iou`` (itself
    included) and becomes their score-weighted mean (box and key points); its score stays its own.
    """
    order = np.argsort(-scores, kind="stable")
    boxes, points, scores = boxes[order], points[order], scores[order]
    overlap = iou_matrix(boxes, boxes)
    remaining = np.ones(len(scores), bool)
    out_b, out_p, out_s = [], [], []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        members = remaining & (overlap[i] > iou)
        members[i] = True
        w = scores[members][:, None]
        out_b.append((boxes[members] * w).sum(0) / w.sum())
        out_p.append((points[members] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[i])
        remaining &= ~members
    if not out_s:
        return np.zeros((0, 4), np.float32), np.zeros((0, 6, 2), np.float32), np.zeros(0, np.float32)
    return np.stack(out_b), np.stack(out_p), np.asarray(out_s, np.float32)


@dataclass(frozen=True)
class View:
    """A square window of an image in image pixels, fed to the network scaled to its input side.
    The window may reach outside the image (the whole image's view is centred on it, as MediaPipe
    letterboxes): that part is the zero border."""

    x0: float
    y0: float
    side: float
    tile: tuple[int, int] | None = None  # a tile's image (width, height); None: the whole image


def cut_by_inner_edges(boxes: np.ndarray, view: View, width: int, height: int) -> np.ndarray:
    """bool (n,): boxes reaching within 1 % of the view's side of an edge of the tile that lies
    inside the image (edges on the image's border cut nothing)."""
    margin = 0.01 * view.side
    x1, y1 = view.x0 + view.side, view.y0 + view.side
    cut = np.zeros(len(boxes), bool)
    if view.x0 > 0:
        cut |= boxes[:, 0] < view.x0 + margin
    if view.y0 > 0:
        cut |= boxes[:, 1] < view.y0 + margin
    if x1 < width:
        cut |= boxes[:, 2] > x1 - margin
    if y1 < height:
        cut |= boxes[:, 3] > y1 - margin
    return cut


def whole_view(width: int, height: int) -> View:
    longer = max(width, height)
    return View((width - longer) / 2, (height - longer) / 2, longer)


def tile_views(width: int, height: int, *, min_face: float, min_fraction: float, overlap: float = TILE_OVERLAP) -> list[View]:
    """The whole image (letterboxed), plus overlapping square tiles when the smallest face wanted
    (``min_face`` pixels) would be under ``min_fraction`` of the whole image's longer side.

    Tiles have side ``min_face / min_fraction`` (at most the shorter side) and overlap by
    ``overlap`` × their side, so a face up to that size lies wholly inside at least one tile; a
    larger face is the whole view's to find.
    """
    longer = max(width, height)
    views = [whole_view(width, height)]
    side = int(min(min(width, height), math.ceil(min_face / min_fraction)))
    if min_face >= min_fraction * longer or side >= longer:
        return views
    def starts(size: int) -> list[int]:
        """Evenly spread starts, ``side`` apart at most minus the overlap, first at 0, last at the end."""
        n = math.ceil((size - side) / (side * (1 - overlap))) + 1 if size > side else 1
        return sorted({round(i * (size - side) / max(1, n - 1)) for i in range(n)})

    views += [View(x, y, side, (width, height)) for y in starts(height) for x in starts(width)]
    return views


def view_input(image: np.ndarray, view: View, side: int, *, antialias: bool = True) -> np.ndarray:
    """uint8 (side, side, 3): the view's window scaled to ``side`` by an affine warp with bilinear
    sampling (image pixel x ↦ (x − x0) · side / view side), zero outside the image: MediaPipe's
    ``ImageToTensorCalculator`` on the CPU. With ``antialias``, a window shrunk more than 2× is
    first reduced by area averaging (then the bilinear warp does not alias small faces away)."""
    import cv2

    scale = side / view.side
    if antialias and scale < 0.5:
        # Reduce the window's part of the image to twice the input resolution first.
        h, w = image.shape[:2]
        x0, y0 = max(0, int(math.floor(view.x0))), max(0, int(math.floor(view.y0)))
        x1, y1 = min(w, int(math.ceil(view.x0 + view.side))), min(h, int(math.ceil(view.y0 + view.side)))
        pre = 2 * scale
        crop = image[y0:y1, x0:x1]
        size = (max(1, round((x1 - x0) * pre)), max(1, round((y1 - y0) * pre)))
        small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        fx, fy = size[0] / (x1 - x0), size[1] / (y1 - y0)
        # small pixel u has its centre at image x0 + (u + 0.5) / fx - 0.5 (cv2.resize's pixel-centre rule)
        m = np.float32([[scale / fx, 0, (x0 + 0.5 / fx - 0.5 - view.x0) * scale],
                        [0, scale / fy, (y0 + 0.5 / fy - 0.5 - view.y0) * scale]])
        return cv2.warpAffine(small, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    m = np.float32([[scale, 0, -view.x0 * scale], [0, scale, -view.y0 * scale]])
    return cv2.warpAffine(image, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


class BlazeFaceDetector:
    """MediaPipe's BlazeFace on ONNX Runtime; ``detect`` one image, ``detect_batch`` many at once.

    Args:
        model: ``full`` (default; small faces too) or ``short`` (close-up faces).
        min_size: the smallest face searched, as a fraction of the image's shorter side; views are
            tiled when the whole image would make such a face too small for the network.
        threshold: the lowest score kept (MediaPipe's default 0.5).
        device: "auto" (CUDA when onnxruntime has it), "cpu", "cuda", "cuda:N".
        threads: onnxruntime intra-op threads (0: its default).
        weights_dir: where the ``.onnx`` files are (default: the package's).
        tiles: search tiles for small faces (``tile_views``); False: the whole image only, as MediaPipe.
        antialias: area-average a view before shrinking it more than 2× (``view_input``); False:
            MediaPipe's bilinear warp alone (its boxes exactly, but small faces alias away).
    """

    name = "blazeface"

    def __init__(self, model: str = "full", *, min_size: float = 0.1, threshold: float = 0.5, device: str = "auto",
                 threads: int = 0, weights_dir: str | os.PathLike | None = None, tiles: bool = True,
                 antialias: bool = True):
        if model not in MODELS:
            raise FakeLocatorError(f"blazeface model must be one of {', '.join(MODELS)}, got {model!r}")
        if not 0 < min_size <= 1:
            raise FakeLocatorError(f"face min_size must be in (0, 1], got {min_size}")
        if not 0 <= threshold <= 1:
            raise FakeLocatorError(f"face threshold must be in [0, 1], got {threshold}")
        self.spec = MODELS[model]
        self.model, self.min_size, self.threshold, self.tiles, self.antialias = model, min_size, threshold, tiles, antialias
        path = Path(weights_dir) if weights_dir else default_weights_dir() / self.spec.file
        if not path.is_file():
            raise FakeLocatorError(f"face detector {path}: no such file (the package's weights/faces folder is incomplete)")
        self.session, self.device = _session(path, device, threads)
        self.anchors = self.spec.anchors()
        self._lock = threading.Lock() if self.device != "cpu" else None

    def views(self, width: int, height: int) -> list[View]:
        if not self.tiles:
            return [whole_view(width, height)]
        return tile_views(width, height, min_face=self.min_size * min(width, height), min_fraction=MIN_FRACTION[self.model])

    def detect(self, image: np.ndarray, color_order: str = "BGR") -> list[Face]:
        """Faces in a uint8 (H, W, 3) image (or (H, W) gray), best first, boxes in its own pixels."""
        return self.detect_batch([image], color_order)[0]

    def detect_batch(self, images: Sequence[np.ndarray], color_order: str = "BGR") -> list[list[Face]]:
        return [[Face(tuple(float(v) for v in b), float(s)) for b, s in zip(boxes, scores)]
                for boxes, _, scores in self.detect_arrays(images, color_order)]

    def detect_arrays(self, images: Sequence[np.ndarray], color_order: str = "BGR"):
        """Per image: boxes (n, 4) (x0, y0, x1, y1) and key points (n, 6, 2) in image pixels,
        scores (n,), best first. Every view of every image runs in one batch."""
        import cv2

        side = self.spec.side
        inputs, owners = [], []
        for k, image in enumerate(images):
            if image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
            elif color_order == "BGR":
                image = image[:, :, ::-1]
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise FakeLocatorError(f"face detection needs uint8 (H, W) or (H, W, 3) images, got {image.dtype} {image.shape}")
            for view in self.views(image.shape[1], image.shape[0]):
                inputs.append(view_input(image, view, side, antialias=self.antialias))
                owners.append((k, view))
        if not inputs:
            return []
        x = np.stack(inputs).transpose(0, 3, 1, 2).astype(np.float32) * np.float32(2 / 255) - np.float32(1)  # (V, 3, s, s)
        if self._lock is not None:
            with self._lock:
                raw_boxes, raw_scores = self.session.run(None, {"input": x})
        else:
            raw_boxes, raw_scores = self.session.run(None, {"input": x})
        boxes, points, scores = decode(raw_boxes, raw_scores, self.anchors, side)  # input-square units
        found: list[list[tuple]] = [[] for _ in images]
        for v, (k, view) in enumerate(owners):
            keep = scores[v] >= self.threshold
            if not keep.any():
                continue
            b = boxes[v][keep] * np.float32(view.side) + np.float32([view.x0, view.y0] * 2)  # to image pixels
            p = points[v][keep] * np.float32(view.side) + np.float32([view.x0, view.y0])
            s = scores[v][keep]
            if view.tile is not None:
                # A face cut by a tile's inner edge is half a face: drop it; the overlap puts the
                # whole face in a neighbouring tile (or the whole view finds it, if large).
                whole = ~cut_by_inner_edges(b, view, *view.tile)
                b, p, s = b[whole], p[whole], s[whole]
            found[k].append((b, p, s))
        out = []
        for parts in found:
            if not parts:
                out.append((np.zeros((0, 4), np.float32), np.zeros((0, 6, 2), np.float32), np.zeros(0, np.float32)))
                continue
            b, p, s = (np.concatenate(x) for x in zip(*parts))
            # IoU is scale-free, so suppressing in image pixels is MediaPipe's suppression in its units.
            out.append(weighted_nms(b, p, s, self.spec.nms_iou))
        return out


def _session(path: Path, device: str, threads: int):
    """An ONNX Runtime session on the runtime's device rules (backends/onnxruntime.py)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise FakeLocatorError("the face detector runs on onnxruntime: pip install 'fakelocator[runtime]'") from None
    from fakelocator.runtime.backends.onnxruntime import CPU, CUDA, _cuda_index, has_cuda

    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise FakeLocatorError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    want_cuda = device.startswith("cuda") or (device == "auto" and has_cuda())
    if device.startswith("cuda") and not has_cuda():
        raise FakeLocatorError(f"device {device}: this onnxruntime has no CUDA provider; use device cpu")
    index = _cuda_index(device) if device.startswith("cuda") else 0
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.log_severity_level = 3
    providers = [(CUDA, {"device_id": index}), CPU] if want_cuda else [CPU]
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    return session, (f"cuda:{index}" if CUDA in session.get_providers() else "cpu")
