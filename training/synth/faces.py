"""Face boxes for face-part regions, from the LBP frontal-face cascade that scikit-image ships.

OpenCV 5 has no Haar cascades and facexlib's detectors need downloaded weights, so the detector is
``skimage.feature.Cascade`` with ``lbpcascade_frontalface_opencv.xml`` from ``skimage/data``. It is
only used to place hair, eyes, mouth, nose and face regions plausibly; a photo without a detected
face gets those regions around a randomly placed face-sized box instead.
"""

from __future__ import annotations

import numpy as np

DETECT_LONG_SIDE = 640  # photos are shrunk to at most this before detection, for speed


def _iou(a, b) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    ix = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    iy = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter)


def detect_faces(image: np.ndarray) -> tuple[tuple[int, int, int, int], ...]:
    """Frontal faces in a uint8 (H, W, 3) RGB image as (x, y, w, h) boxes, biggest first.

    Raw detections are grouped by overlap (IoU > 0.3) and averaged. The biggest group is kept;
    others only when at least two raw detections agree, which removes most single false hits.
    Returns ``()`` when scikit-image is not installed.
    """
    try:
        from skimage.data import lbp_frontal_face_cascade_filename
        from skimage.feature import Cascade
    except ImportError:
        return ()
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, DETECT_LONG_SIDE / max(h, w))
    small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else image
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    cascade = Cascade(lbp_frontal_face_cascade_filename())
    side = min(gray.shape)
    raw = cascade.detect_multi_scale(img=gray, scale_factor=1.2, step_ratio=1, min_size=(24, 24), max_size=(side, side))
    boxes = [(d["c"], d["r"], d["width"], d["height"]) for d in raw]
    groups: list[list[tuple]] = []
    for box in sorted(boxes, key=lambda b: -b[2] * b[3]):
        for g in groups:
            if _iou(g[0], box) > 0.3:
                g.append(box)
                break
        else:
            groups.append([box])
    if not groups:
        return ()
    groups.sort(key=lambda g: (-len(g), -g[0][2] * g[0][3]))
    kept = [groups[0]] + [g for g in groups[1:] if len(g) >= 2]
    faces = []
    for g in kept:
        x, y, bw, bh = (float(np.mean([b[i] for b in g])) for i in range(4))
        faces.append(tuple(int(round(v / scale)) for v in (x, y, bw, bh)))
    faces.sort(key=lambda f: -f[2] * f[3])
    return tuple(faces)
