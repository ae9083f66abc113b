"""Example figures like the paper's Fig. 1: real | fake | ground truth | prediction | overlay, side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fakelocator.runtime.overlay import map_levels, overlay
from fakelocator.training.samples import Sample

PANEL_HEIGHT = 256
LABEL_HEIGHT = 22


def _panel(image_bgr: np.ndarray, label: str, height: int) -> np.ndarray:
    import cv2

    h, w = image_bgr.shape[:2]
    width = max(1, int(round(w * height / h)))
    body = cv2.resize(image_bgr, (width, height), interpolation=cv2.INTER_AREA if h > height else cv2.INTER_LINEAR)
    strip = np.full((LABEL_HEIGHT, width, 3), 255, np.uint8)
    cv2.putText(strip, label, (4, LABEL_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, body], axis=0)


def _gray(m: np.ndarray) -> np.ndarray:
    levels = map_levels(m)  # (H, W) uint8
    return np.repeat(levels[:, :, None], 3, axis=2)


def compose(
    sample: Sample, image_rgb: np.ndarray, real_rgb: np.ndarray | None, gt: np.ndarray | None, pred: np.ndarray,
    *, score: float, threshold: float, height: int = PANEL_HEIGHT,
) -> np.ndarray:
    """The figure as a uint8 (H, W, 3) BGR array: five panels of equal height, each labelled."""
    import cv2

    bgr = np.ascontiguousarray(image_rgb[:, :, ::-1])
    h, w = bgr.shape[:2]
    if real_rgb is not None:
        real_panel = np.ascontiguousarray(real_rgb[:, :, ::-1])
    else:
        real_panel = np.full((h, w, 3), 235, np.uint8)
        note = "(is real)" if sample.kind == "real" else "(no real image)"
        cv2.putText(real_panel, note, (8, h // 2), cv2.FONT_HERSHEY_SIMPLEX, max(0.4, w / 400), (90, 90, 90), 1, cv2.LINE_AA)
    truth = gt if gt is not None else np.zeros((h, w), np.float32)
    verdict = "fake" if score >= threshold else "real"
    panels = [
        _panel(real_panel, "real", height),
        _panel(bgr, f"input ({sample.kind}{', ' + sample.property if sample.property else ''})", height),
        _panel(_gray(truth), "ground truth (Eq. 7)", height),
        _panel(_gray(pred), f"prediction: {verdict} {score:.3f}", height),
        _panel(overlay(bgr, pred), "overlay", height),
    ]
    gap = np.full((height + LABEL_HEIGHT, 4, 3), 255, np.uint8)
    row = [panels[0]]
    for p in panels[1:]:
        row += [gap, p]
    return np.concatenate(row, axis=1)


def write_example(path: Path, sample: Sample, image_rgb, real_rgb, gt, pred, *, score: float, threshold: float) -> Path:
    import cv2

    figure = compose(sample, image_rgb, real_rgb, gt, pred, score=score, threshold=threshold)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), figure):
        raise OSError(f"could not write {path}")
    return path
