"""Generated datasets for the training tests.

The toy task mimics the artifact FakeLocator looks for (paper Fig. 2): a real image is a smooth
random field with mild sensor noise; its "fake" adds a ±``AMPLITUDE`` checkerboard, the signature
of a GAN decoder's transposed convolutions, inside a random square. Eq. 7 then marks exactly that
square with the uniform value ``AMPLITUDE / 255``. An "entire synthesis" has the checkerboard
everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

AMPLITUDE = 48


def _write(path: Path, image: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(image[:, :, ::-1]))


def smooth_real(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth RGB field in [70, 185] plus N(0, 2) noise: no value near 0 or 255, so the checkerboard never clips."""
    import cv2

    low = rng.uniform(70, 185, (4, 4, 3)).astype(np.float32)
    field = cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR) + rng.normal(0, 2, (size, size, 3))
    return np.clip(np.rint(field), 0, 255).astype(np.uint8)


def checkerboard(h: int, w: int) -> np.ndarray:
    return np.where(np.indices((h, w)).sum(0) % 2 == 0, AMPLITUDE, -AMPLITUDE)[:, :, None]


def toy_pair(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    """(real, fake, (y, x, side)): the fake has the checkerboard in a square of 3/8 to 5/8 of the side."""
    real = smooth_real(rng, size)
    side = int(rng.integers(3 * size // 8, 5 * size // 8 + 1))
    y, x = (int(v) for v in rng.integers(0, size - side + 1, 2))
    fake = real.astype(np.int32)
    fake[y:y + side, x:x + side] += checkerboard(side, side)
    return real, np.clip(fake, 0, 255).astype(np.uint8), (y, x, side)


def write_toy_dataset(root: Path, pairs: int, *, size: int = 32, seed: int = 0, entire: int = 0, ext: str = ".png") -> Path:
    """ROOT/real/NNN and ROOT/fake/NNN (paired) and, optionally, ROOT/entire/NNN."""
    rng = np.random.default_rng(seed)
    for i in range(pairs):
        real, fake, _ = toy_pair(rng, size)
        _write(root / "real" / f"{i:03d}{ext}", real)
        _write(root / "fake" / f"{i:03d}{ext}", fake)
    for i in range(entire):
        synth = smooth_real(rng, size).astype(np.int32) + checkerboard(size, size)
        _write(root / "entire" / f"{i:03d}{ext}", np.clip(synth, 0, 255).astype(np.uint8))
    return root


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> dict[str, Path]:
    """32×32 toy task roots: ``train`` (48 pairs), ``val`` (16 pairs), ``mixed`` (12 pairs + 4 entire)."""
    base = tmp_path_factory.mktemp("toy")
    return {
        "train": write_toy_dataset(base / "train", 48, seed=1),
        "val": write_toy_dataset(base / "val", 16, seed=2),
        "mixed": write_toy_dataset(base / "mixed", 12, seed=3, entire=4),
    }
