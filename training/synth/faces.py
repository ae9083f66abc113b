"""Face boxes for face-part regions, from the LBP frontal-face cascade that scikit-image ships.

OpenCV 5 has no Haar cascades and facexlib's detectors need downloaded weights, so the detector is
``skimage.feature.Cascade`` with ``lbpcascade_frontalface_opencv.xml`` from ``skimage/data``. It is
only used to place hair, eyes, mouth, nose and face regions plausibly; a photo without a detected
face gets those regions around a randomly placed face-sized box instead.
"""

from __future__ import annotations

import numpy as np

DETECT_LONG_SIDE = 640  # photos are shrunk to at most this before detection, for speed


SKIN_FRACTION = 0.5  # of the box's central half, for a detection to count as a face


def _overlap(a, b) -> float:
    """Intersection over the smaller box's area."""
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    ix = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    iy = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    return ix * iy / min(aw * ah, bw * bh)


def _skin_fraction(image: np.ndarray, box) -> float:
    """Share of skin-coloured pixels (a YCrCb box) in the central half of ``box``; 0 for gray images."""
    import cv2

    x, y, w, h = box
    centre = image[y + h // 4: y + 3 * h // 4, x + w // 4: x + 3 * w // 4]
    if centre.size == 0:
        return 0.0
    ycc = cv2.cvtColor(np.ascontiguousarray(centre), cv2.COLOR_RGB2YCrCb).reshape(-1, 3)
    cr, cb = ycc[:, 1], ycc[:, 2]
    return float(((cr >= 135) & (cr <= 173) & (cb >= 77) & (cb <= 127)).mean())


def detect_faces(image: np.ndarray) -> tuple[tuple[int, int, int, int], ...]:
    """Frontal faces in a uint8 (H, W, 3) RGB image as (x, y, w, h) boxes, biggest first.

    The LBP cascade fires on many textures, so a detection is kept only when at least half of its
    central part is skin-coloured (which drops every detection in a gray photo), and not when it
    mostly overlaps a bigger kept face or is less than 0.4 times as wide as the biggest. Returns ``()`` when scikit-image is not installed.
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
    raw = cascade.detect_multi_scale(img=gray, scale_factor=1.1, step_ratio=1, min_size=(24, 24), max_size=(side, side))
    boxes = sorted(((d["c"], d["r"], d["width"], d["height"]) for d in raw), key=lambda b: -b[2] * b[3])
    faces: list[tuple[int, int, int, int]] = []
    for box in boxes:
        full = tuple(int(round(v / scale)) for v in box)
        if _skin_fraction(image, full) < SKIN_FRACTION:
            continue
        if any(_overlap(full, kept) > 0.5 for kept in faces) or (faces and full[2] < 0.4 * faces[0][2]):
            continue
        faces.append(full)
    return tuple(faces)
