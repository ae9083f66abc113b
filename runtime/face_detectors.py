"""Face detectors for the face-crop region provider (``fakelocator.runtime.faces``) besides the
default, BlazeFace (``blazeface.py``):

- ``LBPCascadeDetector`` (``detector="lbp"``, the fallback): the LBP frontal-face cascade that
  ships inside scikit-image (``skimage.data.lbp_frontal_face_cascade_filename()``); frontal faces
  only. OpenCV 5 no longer ships its cascades (nor ``CascadeClassifier``).
- ``RetinaFaceDetector``: facexlib's RetinaFace (ResNet-50 or MobileNet-0.25) from a local weights
  file; more accurate (profiles, small and occluded faces), needs torch and facexlib.

Both detect on a downscaled copy of the image (a 1080p frame is not searched at full resolution)
and return ``Face`` boxes in the image's own pixels, best first. Heavy imports (scikit-image, torch,
facexlib) happen when a detector is built, not when this module is imported.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.results import Face

FACES_EXTRA = "pip install 'fakelocator[faces]'"


def _gray(image: np.ndarray, color_order: str) -> np.ndarray:
    import cv2

    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY if color_order == "RGB" else cv2.COLOR_BGR2GRAY)


def _shrink(image: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    if scale >= 1:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box with (n, 4) boxes, all (x0, y0, x1, y1)."""
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def _containment(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over the smaller of the two areas: 1 when one box lies inside the other."""
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return iw * ih / np.maximum(np.minimum(area, areas), 1e-9)


def group_windows(windows: np.ndarray, *, iou: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """Cluster a cascade's raw hits (n, 4): each window joins the cluster whose mean box it overlaps
    most (IoU ≥ ``iou``), or starts one. Returns (mean boxes (k, 4), hit counts (k,))."""
    sums: list[np.ndarray] = []
    counts: list[int] = []
    order = np.argsort(-(windows[:, 2] - windows[:, 0]), kind="stable")  # large windows first: stable centres
    for box in windows[order]:
        if sums:
            means = np.stack(sums) / np.asarray(counts, np.float64)[:, None]
            overlap = _iou(box, means)
            best = int(np.argmax(overlap))
            if overlap[best] >= iou:
                sums[best] = sums[best] + box
                counts[best] += 1
                continue
        sums.append(box.astype(np.float64))
        counts.append(1)
    if not sums:
        return np.zeros((0, 4)), np.zeros(0, np.int64)
    counts_arr = np.asarray(counts, np.int64)
    return np.stack(sums) / counts_arr[:, None], counts_arr


def suppress_nested(boxes: np.ndarray, scores: np.ndarray, *, overlap: float = 0.5) -> list[int]:
    """Indices to keep, best first: a box that mostly lies inside (or around) a better one is the same face."""
    keep: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if keep and (_containment(boxes[i], boxes[keep]) > overlap).any():
            continue
        keep.append(int(i))
    return keep


class LBPCascadeDetector:
    """scikit-image's LBP frontal-face cascade, made robust and fast for video frames.

    The image is searched on a copy downscaled so that the smallest face wanted (``min_size`` ×
    the shorter side) spans ``MIN_WINDOW`` pixels: a 1080p frame with ``min_size=0.1`` is searched
    at 320 × 569. All raw window hits are kept and clustered by overlap (``group_windows``); a
    cluster's score is ``hits / (hits + 4)`` (the cascade gives no probability; 4 hits, OpenCV's
    customary ``minNeighbors``, score 0.5), clusters below ``threshold`` are dropped, and a cluster
    nested in a better one is suppressed.

    Args:
        min_size, max_size: face side range as fractions of the image's shorter side.
        scale_factor: window growth between scales.
        step_ratio: window stride in units of the window's scale (1 = every position).
        threshold: the lowest score kept (0.5 = at least 4 hits).
    """

    name = "lbp-cascade"
    MIN_WINDOW = 32  # pixels: the 24-pixel cascade window, with room to vary scale and position
    HITS_AT_HALF = 4

    def __init__(
        self,
        *,
        min_size: float = 0.1,
        max_size: float = 1.0,
        scale_factor: float = 1.15,
        step_ratio: float = 1.25,
        threshold: float = 0.5,
    ):
        if not 0 < min_size <= max_size <= 1:
            raise FakeLocatorError(f"face sizes must satisfy 0 < min_size <= max_size <= 1, got {min_size}, {max_size}")
        if not scale_factor > 1 or not step_ratio > 0:
            raise FakeLocatorError(f"scale_factor must be > 1 and step_ratio > 0, got {scale_factor}, {step_ratio}")
        try:
            from skimage.data import lbp_frontal_face_cascade_filename
            from skimage.feature import Cascade
        except ImportError:
            raise FakeLocatorError(f"the built-in face detector needs scikit-image: {FACES_EXTRA}") from None
        self.cascade = Cascade(lbp_frontal_face_cascade_filename())
        self.window = int(self.cascade.window_width)
        self.min_size, self.max_size = min_size, max_size
        self.scale_factor, self.step_ratio, self.threshold = scale_factor, step_ratio, threshold

    def detect(self, image: np.ndarray, color_order: str = "BGR") -> list[Face]:
        """Faces in a uint8 (H, W, 3) image (or (H, W) gray), best first, boxes in its own pixels."""
        gray = _gray(image, color_order)
        height, width = gray.shape
        shorter = min(height, width)
        scale = min(1.0, self.MIN_WINDOW / (self.min_size * shorter))
        small = _shrink(gray, scale).astype(np.float32) * np.float32(1 / 255)
        scale = small.shape[0] / height
        lo = max(self.window, self.min_size * shorter * scale)
        hi = max(lo, self.max_size * min(small.shape))
        # min_neighbour_number=1 and an intersection threshold of 1 (never exceeded) return every raw hit.
        raw = self.cascade.detect_multi_scale(small, self.scale_factor, self.step_ratio, (lo, lo), (hi, hi), 1, 1.0)
        if not raw:
            return []
        windows = np.array([(d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"]) for d in raw], np.float64)
        boxes, hits = group_windows(windows)
        scores = hits / (hits + self.HITS_AT_HALF)
        faces = []
        for i in suppress_nested(boxes, scores):
            if scores[i] >= self.threshold:
                x0, y0, x1, y1 = boxes[i] / scale
                faces.append(Face((x0, y0, x1, y1), float(scores[i])))
        return faces


class RetinaFaceDetector:
    """facexlib's RetinaFace from a local weights file (never downloaded).

    The network (ResNet-50 or MobileNet-0.25) is recognized from the checkpoint's tensors; the
    ``module.`` prefix of facexlib's releases is stripped. Detection runs on a copy whose longer
    side is at most ``detect_side`` (facexlib would otherwise search a 1080p frame at full size).
    Decoding follows facexlib's ``detect_faces`` with local variables only (that method stores
    per-call state on the model), so one detector serves the decoding threads concurrently.

    Args:
        weights: ``detection_Resnet50_Final.pth`` or ``detection_mobilenet0.25_Final.pth``.
        device: "auto" (CUDA when torch sees it), "cpu", "cuda", "cuda:N".
        threshold: the lowest confidence kept (facexlib's default 0.8).
        nms: IoU of non-maximum suppression (facexlib's default 0.4).
        detect_side: longest side of the searched copy.
    """

    name = "retinaface"

    def __init__(self, weights: str | os.PathLike, *, device: str = "auto", threshold: float = 0.8,
                 nms: float = 0.4, detect_side: int = 960):
        try:
            import torch
            from facexlib.detection.retinaface import RetinaFace
        except ImportError:
            raise FakeLocatorError("RetinaFace needs torch and facexlib (pip install 'fakelocator[train]', then "
                                   "pip install --no-deps facexlib==0.3.0: its opencv-python would clash with "
                                   "opencv-python-headless); "
                                   "without --face-weights the built-in detector needs neither") from None
        path = Path(weights)
        if not path.is_file():
            raise FakeLocatorError(f"face detector weights {path}: no such file")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
            raise FakeLocatorError(f"face detector weights {path}: cannot be read ({e})") from None
        if not isinstance(state, dict):
            raise FakeLocatorError(f"face detector weights {path}: not a state dict")
        state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
        network = "mobile0.25" if any(k.startswith("body.stage1") for k in state) else "resnet50"
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        import warnings

        with warnings.catch_warnings():  # torchvision's deprecation note about facexlib's `pretrained=False`
            warnings.simplefilter("ignore", UserWarning)
            model = RetinaFace(network_name=network, half=False, phase="test", device=self.device)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise FakeLocatorError(f"face detector weights {path}: not RetinaFace weights ({str(e).splitlines()[0]})") from None
        self.model = model.to(self.device).eval()
        self.network = network
        self.threshold, self.nms, self.detect_side = threshold, nms, detect_side
        self._mean = torch.tensor([104.0, 117.0, 123.0], device=self.device).view(1, 3, 1, 1)
        self._lock = threading.Lock() if self.device.type == "cuda" else None

    def detect(self, image: np.ndarray, color_order: str = "BGR") -> list[Face]:
        import cv2
        import torch
        from facexlib.detection.retinaface_utils import PriorBox, decode, py_cpu_nms

        bgr = image if color_order == "BGR" else image[:, :, ::-1]
        if bgr.ndim == 2:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
        height, width = bgr.shape[:2]
        small = _shrink(bgr, min(1.0, self.detect_side / max(height, width)))
        h, w = small.shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(small)).to(self.device).permute(2, 0, 1)[None].float() - self._mean
        with torch.no_grad():
            if self._lock is not None:
                with self._lock:
                    loc, conf, _ = self.model(x)
            else:
                loc, conf, _ = self.model(x)
            priors = PriorBox(self.model.cfg, image_size=(h, w)).forward().to(self.device)
            boxes = decode(loc[0], priors, self.model.cfg["variance"])
        boxes = boxes.cpu().numpy() * np.array([width, height, width, height], np.float32)  # to the image's pixels
        scores = conf[0, :, 1].cpu().numpy()
        keep = scores > self.threshold
        boxes, scores = boxes[keep], scores[keep]
        order = scores.argsort()[::-1]  # facexlib's order (ties included), so NMS keeps the same boxes
        dets = np.hstack([boxes[order], scores[order, None]]).astype(np.float32)
        dets = dets[py_cpu_nms(dets, self.nms)] if len(dets) else dets
        return [Face(tuple(float(v) for v in d[:4]), float(d[4])) for d in dets]
