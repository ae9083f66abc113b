"""Generated datasets for the training tests.

The toy task mimics what FakeLocator looks for: a real image is fine-grained noise; its "fake"
replaces a random square with a 4×-downsampled, bilinearly upsampled copy (a GAN decoder's
upsampling leaves interpolated, too-smooth texture), so Eq. 7 marks exactly that square. An
"entire synthesis" is noise upsampled the same way everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _write(path: Path, image: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(image[:, :, ::-1]))


def toy_pair(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    """(real, fake, (y, x, side)) with a side-long square of the fake upsampled ×4 from a quarter resolution."""
    import cv2

    real = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    side = 4 * int(rng.integers(size // 16, size // 8 + 1))
    y, x = (int(v) for v in rng.integers(0, size - side + 1, 2))
    fake = real.copy()
    small = cv2.resize(real[y:y + side, x:x + side], (side // 4, side // 4), interpolation=cv2.INTER_AREA)
    fake[y:y + side, x:x + side] = cv2.resize(small, (side, side), interpolation=cv2.INTER_LINEAR)
    return real, fake, (y, x, side)


def write_toy_dataset(root: Path, pairs: int, *, size: int = 64, seed: int = 0, entire: int = 0, ext: str = ".png") -> Path:
    """ROOT/real/NNN, ROOT/fake/NNN (paired) and, optionally, ROOT/entire/NNN (upsampled noise)."""
    import cv2

    rng = np.random.default_rng(seed)
    for i in range(pairs):
        real, fake, _ = toy_pair(rng, size)
        _write(root / "real" / f"{i:03d}{ext}", real)
        _write(root / "fake" / f"{i:03d}{ext}", fake)
    for i in range(entire):
        small = rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
        _write(root / "entire" / f"{i:03d}{ext}", cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR))
    return root


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> dict[str, Path]:
    """A 64×64 toy task: ``train`` (48 pairs + 8 entire) and ``val`` (16 pairs + 4 entire) roots."""
    base = tmp_path_factory.mktemp("toy")
    return {
        "train": write_toy_dataset(base / "train", 48, seed=1, entire=8),
        "val": write_toy_dataset(base / "val", 16, seed=2, entire=4),
    }
