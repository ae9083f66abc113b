"""Fixtures for the runtime tests: a tiny torch-free ONNX model and generated inputs.

The tiny model follows the exported-ONNX contract (input ``image`` (N, 3, 32, 32); outputs ``map``,
``score``, ``features``; the ``fakelocator.*`` metadata) and detects *red*: its map is
``sigmoid(4 * (r - 1))`` where ``r`` is the normalized red channel, so a pure red area maps to ~1,
black, gray, green and blue to ~0. Tests can therefore say where the map must be high.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fakelocator.contract import Preprocessing
from helpers.models import build_red_model

SIZE = 32
CONTRACT = Preprocessing(height=SIZE, width=SIZE)


@pytest.fixture(scope="session")
def red_model(tmp_path_factory) -> Path:
    return build_red_model(tmp_path_factory.mktemp("models") / "red.onnx")


@pytest.fixture(scope="session")
def locator(red_model):
    from fakelocator.runtime import Locator

    # min_side=1: the tests of shapes and kernels use images of a few pixels, which the default
    # refuses as too small to analyse (test_hostile_limits.py)
    with Locator.load(red_model, backend="onnxruntime", device="cpu", batch_size=4, workers=2, threads=1, min_side=1) as loc:
        yield loc


def red_square(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """A black BGR image with a pure red (x0, y0, x1, y1) rectangle."""
    image = np.zeros((height, width, 3), np.uint8)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = (0, 0, 255)
    return image


def write_video(path: Path, frames: int = 20, fps: float = 10.0, size: tuple[int, int] = (64, 48)) -> Path:
    """An MJPG .avi whose odd frames show a red square (fake for the red model), even frames black."""
    import cv2

    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write MJPG video here"
    for i in range(frames):
        writer.write(red_square(height, width, (8, 8, 30, 30)) if i % 2 else np.zeros((height, width, 3), np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="session")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("videos") / "clip.avi")


@pytest.fixture(name="red_square")
def _red_square_fixture():
    """The ``red_square(height, width, box)`` image maker."""
    return red_square


@pytest.fixture(name="build_red_model")
def _build_red_model_fixture():
    """The ``build_red_model(path, batch=..., precision=...)`` model writer."""
    return build_red_model


@pytest.fixture
def contract() -> Preprocessing:
    return CONTRACT
