"""Inputs for the Ray integration's tests: the tiny *red* model and a folder of generated images.

The red model (tests/helpers/models.py) maps pure red to ~1 and anything without red to ~0, so
scores and maps are cheap and vary from image to image.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers.models import build_red_model

#: (height, width) of the generated images: smaller and larger than the model's 32 × 32 input, odd sizes.
SIZES = ((32, 32), (48, 80), (101, 77), (17, 250), (200, 150))
IMAGES = 40
CORRUPT = ("corrupt-truncated.jpg", "corrupt-text.png")


@pytest.fixture(scope="session")
def red_model(tmp_path_factory) -> Path:
    return build_red_model(tmp_path_factory.mktemp("models") / "red.onnx")


def make_image(i: int) -> np.ndarray:
    """Image ``i``: seeded noise of size SIZES[i % 5] with a red rectangle whose place and size vary with i."""
    height, width = SIZES[i % len(SIZES)]
    rng = np.random.default_rng(i)
    image = rng.integers(0, 160, (height, width, 3), dtype=np.uint8)
    if i % 4:  # three in four have a red area
        y0, x0 = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
        image[y0:y0 + height // 3 + 1, x0:x0 + width // 3 + 1] = (0, 0, 255)
    return image


def write_inputs(root: Path, count: int = IMAGES, *, corrupt: bool = True) -> Path:
    """``count`` PNG and JPEG images of several sizes under ``root`` (some in a subfolder), and 2 corrupt files."""
    for i in range(count):
        ext = ".png" if i % 2 else ".jpg"
        path = root / ("sub" if i % 3 == 0 else "") / f"img-{i:03d}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, buf = cv2.imencode(ext, make_image(i))
        assert ok
        path.write_bytes(buf.tobytes())
    if corrupt:
        whole = cv2.imencode(".jpg", make_image(1))[1].tobytes()
        (root / CORRUPT[0]).write_bytes(whole[: len(whole) // 3])  # a JPEG cut off in its entropy-coded data
        (root / CORRUPT[1]).write_bytes(b"this is not a PNG\n")
    return root


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    return write_inputs(tmp_path_factory.mktemp("inputs"))


def write_video(path: Path, frames: int = 6, size: tuple[int, int] = (64, 48)) -> Path:
    """An MJPG .avi whose odd frames show a red square."""
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (width, height))
    assert writer.isOpened(), "OpenCV cannot write MJPG video here"
    for i in range(frames):
        image = np.zeros((height, width, 3), np.uint8)
        if i % 2:
            image[8:30, 8:30] = (0, 0, 255)
        writer.write(image)
    writer.release()
    return path
