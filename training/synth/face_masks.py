"""Face-part masks for synthesis, from the same face mesh as the attention's parser.

A photo is parsed once per process (``fakelocator.training.attention.mesh.MeshParser``: BlazeFace,
the 468-point mesh and the person mask, ONNX models that ship in the package) into canonical labels
at the photo's own resolution; each view cut from it takes its labels through the same crop, resize
and flip (nearest neighbour), and ``regions.make_region`` draws a face part from them instead of an
ellipse laid out on a face box. Without onnxruntime, or when the mesh finds no face, there are no
labels and the parts fall back to the box layout.
"""

from __future__ import annotations

import logging

import numpy as np

from fakelocator.training.attention.labels import LABEL

log = logging.getLogger(__name__)

#: The synthetic generator's face parts (``regions.FACE_PARTS``) → canonical labels.
PART_LABELS = {
    "face": ("skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip"),
    "hair": ("hair",),
    "eyes": ("l_eye", "r_eye"),
    "mouth": ("mouth", "u_lip", "l_lip"),
    "nose": ("nose",),
}

_CACHE: dict[str, np.ndarray | None] = {}
_CACHE_SIZE = 64
_PARSER = None


def _parser():
    global _PARSER
    if _PARSER is None:
        from fakelocator.training.attention.mesh import MeshParser

        _PARSER = MeshParser(threads=1)
    return _PARSER


def photo_labels(key: str, image: np.ndarray) -> np.ndarray | None:
    """Canonical uint8 (H, W) labels of a uint8 RGB photo, parsed once per ``key`` and process;
    None when no face is found or the mesh cannot run here."""
    if key in _CACHE:
        return _CACHE[key]
    try:
        from fakelocator.training.attention.mesh import rasterize

        parser = _parser()
        meshes = parser.landmarker.landmarks(image)
        labels = rasterize(meshes, parser.landmarker.person(image), *image.shape[:2], out_hw=image.shape[:2]) if meshes else None
    except ImportError as e:  # no onnxruntime: face parts are laid out on boxes
        log.warning("face-part masks: the face mesh cannot run (%s); face parts use box layouts", e)
        labels = None
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = labels
    return labels


def view_labels(labels: np.ndarray | None, crop: tuple[int, int, int, int], out_hw: tuple[int, int], flip: bool) -> np.ndarray | None:
    """A photo's labels through a view's crop (x, y, w, h), resize to ``out_hw`` and flip."""
    if labels is None:
        return None
    import cv2

    x, y, w, h = crop
    out = cv2.resize(labels[y:y + h, x:x + w], (out_hw[1], out_hw[0]), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(out[:, ::-1]) if flip else out


def part_mask(labels: np.ndarray, kind: str) -> np.ndarray:
    """bool (H, W): where ``kind`` (a face part) is in canonical labels."""
    return np.isin(labels, [LABEL[n] for n in PART_LABELS[kind]])
