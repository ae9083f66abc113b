"""Face parsing from MediaPipe's face mesh: the parser that needs no downloaded weights.

The three MediaPipe models it runs ship in the package as ONNX (converted once from mediapipe
0.10.14 by ``scripts/mediapipe/convert_blazeface.py``, Apache-2.0) and run on onnxruntime, so
neither mediapipe, TensorFlow nor torch is needed:

1. **BlazeFace** (full range, ``fakelocator.runtime.blazeface``) finds the faces and their eyes;
2. **face mesh** (``face_landmark.onnx``, 468 points): run as MediaPipe's FaceMesh runs it — a
   square region 1.5 × the face, rotated so the eyes are level, resampled to 192 × 192 in [0, 1];
   then once more on the region the first mesh spans (MediaPipe's tracking step), which centres it;
3. **selfie segmentation** (``selfie_segmentation.onnx``): the person mask, for hair.

The mesh's contours give the CelebAMask-HQ classes of ``labels.LABELS`` (the canonical numbering the
attention's regions use): ``skin`` (the face oval), ``l_brow``/``r_brow``, ``l_eye``/``r_eye``,
``nose`` (the hull of MediaPipe's nose points), ``u_lip``/``l_lip`` (between the outer and inner
lip contours) and ``mouth`` (inside the inner contour). ``hair`` is the person mask outside the
face oval, above the mouth and within a face-sized reach of it; ears, neck, glasses, hat and cloth
are never labelled. ``l_``/``r_`` are the subject's left and right, as in CelebAMask-HQ.

Label maps are 512 × 512 of the image stretched to the square, like the facexlib parsers', so the
cache and the region table work unchanged. Torch-free.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.training.attention.labels import LABEL

MEDIAPIPE_VERSION = "0.10.14"
LABEL_SIDE = 512

# Ordered contours of MediaPipe's canonical face mesh (mediapipe/python/solutions/
# face_mesh_connections.py, chained into loops; the same indices in the 468- and 478-point meshes).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_BROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)  # upper line, then the lower one back
RIGHT_BROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
NOSE = (1, 2, 4, 5, 6, 19, 45, 48, 64, 94, 97, 98, 115, 168, 195, 197, 220, 275, 278, 294, 326, 327, 344, 440)
LIPS_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_OUTER_LOWER = (291, 375, 321, 405, 314, 17, 84, 181, 91, 146, 61)
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (308, 324, 318, 402, 317, 14, 87, 178, 88, 95, 78)
EYE_CORNERS = (33, 263)  # subject's right eye outer corner, left eye outer corner: the roll
MOUTH_CENTRE = (13, 14)


def default_models_dir() -> Path:
    import fakelocator

    return Path(fakelocator.__file__).resolve().parent / "weights" / "face_parsing"


def _session(path: Path, threads: int = 0):
    import onnxruntime as ort

    if not path.is_file():
        raise FakeLocatorError(f"face mesh model {path}: no such file (the package's weights/face_parsing folder is incomplete)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def roi_transform(centre: tuple[float, float], side: float, angle: float, out: int) -> np.ndarray:
    """2×3 affine map from image pixels to a (out × out) crop: a square of ``side`` pixels around
    ``centre``, rotated by ``angle`` (radians, counter-clockwise in the image) so it comes out level."""
    cx, cy = centre
    c, s = math.cos(angle), math.sin(angle)
    k = out / side
    # x' = k · R(−angle) · (x − centre) + out/2
    return np.array([[k * c, k * s, out / 2 - k * (c * cx + s * cy)],
                     [-k * s, k * c, out / 2 - k * (-s * cx + c * cy)]], np.float64)


def roll(right: np.ndarray, left: np.ndarray) -> float:
    """The angle that levels the line from the subject's right eye (image left) to the left eye."""
    return math.atan2(left[1] - right[1], left[0] - right[0])


class MeshLandmarker:
    """Faces → 468 mesh points each (x, y in image pixels, z relative), as MediaPipe's FaceMesh.

    Args:
        models_dir: folder of ``face_landmark.onnx`` and ``selfie_segmentation.onnx``.
        max_faces: at most this many faces per image (the highest-scoring).
        threads: onnxruntime intra-op threads (0: its default).
    """

    SIDE = 192
    SCALE = 1.5  # MediaPipe's ROI: 1.5 × the face, square on its longer side

    def __init__(self, models_dir: str | Path | None = None, *, max_faces: int = 4, threads: int = 0):
        from fakelocator.runtime.blazeface import BlazeFaceDetector

        folder = Path(models_dir) if models_dir else default_models_dir()
        self.mesh = _session(folder / "face_landmark.onnx", threads)
        self.selfie = _session(folder / "selfie_segmentation.onnx", threads)
        self.detector = BlazeFaceDetector("full", device="cpu", threads=threads, tiles=False)
        self.max_faces = max_faces

    def _run_mesh(self, image: np.ndarray, rois: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(F, 468, 3) points in image pixels and (F,) face probabilities for F crop transforms."""
        import cv2

        crops = [cv2.warpAffine(image, m, (self.SIDE, self.SIDE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                 for m in rois]
        x = np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32) * np.float32(1 / 255)  # (F, 3, 192, 192)
        points, flag = self.mesh.run(None, {"input": x})
        points = points.reshape(len(rois), 468, 3).astype(np.float64)
        out = np.empty_like(points)
        for i, m in enumerate(rois):
            inverse = cv2.invertAffineTransform(m)
            out[i, :, :2] = points[i, :, :2] @ inverse[:, :2].T + inverse[:, 2]
            out[i, :, 2] = points[i, :, 2] / np.hypot(m[0, 0], m[0, 1])  # crop pixels → image pixels
        return out, 1 / (1 + np.exp(-flag.reshape(-1)))

    def landmarks(self, image: np.ndarray) -> list[np.ndarray]:
        """float (468, 3) meshes of the faces in a uint8 RGB (H, W, 3) image, best face first."""
        boxes, points, scores = self.detector.detect_arrays([image], "RGB")[0]
        if not len(scores):
            return []
        boxes, points = boxes[: self.max_faces], points[: self.max_faces]
        # Detection → ROI (MediaPipe's face_detection_front_detection_to_roi): the box centre, the
        # eyes' roll, 1.5 × the box's longer side.
        rois = [roi_transform(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), self.SCALE * max(b[2] - b[0], b[3] - b[1]),
                              roll(p[0], p[1]), self.SIDE) for b, p in zip(boxes, points)]
        meshes, _ = self._run_mesh(image, rois)
        # Landmarks → ROI (face_landmarks_to_roi): the mesh's own extent and roll, then run again.
        rois = []
        for mesh in meshes:
            angle = roll(mesh[EYE_CORNERS[0], :2], mesh[EYE_CORNERS[1], :2])
            c, s = math.cos(angle), math.sin(angle)
            level = mesh[:, :2] @ np.array([[c, -s], [s, c]])  # points in the face's level frame
            lo, hi = level.min(0), level.max(0)
            centre = ((lo + hi) / 2) @ np.array([[c, s], [-s, c]])
            rois.append(roi_transform(tuple(centre), self.SCALE * float(max(hi - lo)), angle, self.SIDE))
        meshes, flags = self._run_mesh(image, rois)
        return [m for m, f in zip(meshes, flags) if f > 0.5]

    def person(self, image: np.ndarray) -> np.ndarray:
        """float32 (256, 256) person probability of the image stretched to the square."""
        import cv2

        x = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32) * np.float32(1 / 255)
        (mask,) = self.selfie.run(None, {"input": x.transpose(2, 0, 1)[None]})
        return mask[0, 0]


def rasterize(meshes: Sequence[np.ndarray], person: np.ndarray | None, height: int, width: int,
              side: int = LABEL_SIDE, out_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Canonical uint8 (side, side) labels of an image of (height, width) stretched to the square
    (or (out_hw) labels: the image at that size), from meshes in its pixels and its person
    probability (any resolution) or None."""
    import cv2

    th, tw = out_hw if out_hw is not None else (side, side)
    labels = np.zeros((th, tw), np.uint8)
    scale = np.array([tw / width, th / height])
    hair = np.zeros((th, tw), bool)
    person_mask = None
    if person is not None:
        person_mask = cv2.resize(person.astype(np.float32), (tw, th), interpolation=cv2.INTER_LINEAR) > 0.5
    yy, xx = np.mgrid[0:th, 0:tw].astype(np.float32)

    def poly(mesh, indices):
        return np.rint(mesh[list(indices), :2] * scale * 16).astype(np.int32)  # 4 bits of sub-pixel precision

    def fill(mask_labels, pts, value):
        cv2.fillPoly(mask_labels, [pts], int(value), lineType=cv2.LINE_8, shift=4)

    for mesh in meshes:
        oval = np.zeros((th, tw), np.uint8)
        fill(oval, poly(mesh, FACE_OVAL), 1)
        if person_mask is not None:
            # Hair: the person outside the face oval, above the mouth (along the face's own
            # up direction) and within a face-sized reach of the face's centre.
            pts = mesh[:, :2] * scale
            centre = pts[list(FACE_OVAL)].mean(0)
            mouth = pts[list(MOUTH_CENTRE)].mean(0)
            up = centre - mouth
            up /= max(np.linalg.norm(up), 1e-6)
            radius = float(np.linalg.norm(pts[list(FACE_OVAL)] - centre, axis=1).max())
            dx, dy = xx - centre[0], yy - centre[1]
            above = (xx - mouth[0]) * up[0] + (yy - mouth[1]) * up[1] > 0
            near = dx * dx + dy * dy < (1.6 * radius) ** 2
            hair |= person_mask & above & near & (oval == 0)
        labels[oval > 0] = LABEL["skin"]
    labels[hair & (labels == 0)] = LABEL["hair"]
    for mesh in meshes:
        fill(labels, poly(mesh, LEFT_BROW), LABEL["l_brow"])
        fill(labels, poly(mesh, RIGHT_BROW), LABEL["r_brow"])
        nose = cv2.convexHull(poly(mesh, NOSE))
        fill(labels, nose, LABEL["nose"])
        fill(labels, poly(mesh, LEFT_EYE), LABEL["l_eye"])
        fill(labels, poly(mesh, RIGHT_EYE), LABEL["r_eye"])
        fill(labels, np.concatenate([poly(mesh, LIPS_OUTER_UPPER), poly(mesh, LIPS_INNER_UPPER)[::-1]]), LABEL["u_lip"])
        fill(labels, np.concatenate([poly(mesh, LIPS_OUTER_LOWER), poly(mesh, LIPS_INNER_LOWER)[::-1]]), LABEL["l_lip"])
        fill(labels, np.concatenate([poly(mesh, LIPS_INNER_UPPER), poly(mesh, LIPS_INNER_LOWER)[1:-1]]), LABEL["mouth"])
    return labels


class MeshParser:
    """A ``Parser`` (``parsing.Parser``): images → canonical label maps from the face mesh.

    ``identity`` names the MediaPipe release the models come from, so cached maps of another
    parser version are stale. Safe to share between threads (a lock around the sessions).
    """

    name = "mesh"
    identity = f"mesh:mediapipe-{MEDIAPIPE_VERSION}"

    def __init__(self, models_dir: str | Path | None = None, *, threads: int = 0, batch_size: int = 8):
        self.models_dir = models_dir
        self.threads = threads
        self.batch_size = batch_size
        self._landmarker: MeshLandmarker | None = None
        self._lock = threading.Lock()

    @property
    def landmarker(self) -> MeshLandmarker:
        if self._landmarker is None:
            self._landmarker = MeshLandmarker(self.models_dir, threads=self.threads)
        return self._landmarker

    def parse(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """uint8 RGB (H, W, 3) images → canonical uint8 (512, 512) label maps (all background without a face)."""
        out = []
        with self._lock:
            for image in images:
                image = np.ascontiguousarray(image[:, :, :3]) if image.ndim == 3 else np.dstack([image] * 3)
                meshes = self.landmarker.landmarks(image)
                person = self.landmarker.person(image) if meshes else None
                out.append(rasterize(meshes, person, *image.shape[:2]))
        return out

    def __getstate__(self):  # data-loading workers rebuild their own sessions
        return {**self.__dict__, "_landmarker": None, "_lock": None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
