"""Fixtures of the evaluation tests: a hand-made ONNX model and generated datasets.

The model (``build_red_model``) follows the exported-ONNX contract (input ``image`` (N, 3, 32, 32);
outputs ``map``, ``score``, ``features``; ``fakelocator.*`` metadata) and detects red: its map is
``sigmoid(4 · (r − 1))`` with ``r`` the normalized red channel, its score the map's maximum and its
features the channel means of the network input. So its output can be computed by hand in numpy
(``reference_map``), and a dataset whose fakes are red patches on non-red images is one it "solves".

The datasets (``make_dataset``) use the on-disk format of docs/data.md: ``real/``, ``fake/`` (a red
rectangle painted on the real image of the same name) and ``entire/`` (red-dominated images).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fakelocator.contract import Preprocessing, to_network_input
from helpers.models import build_red_model

SIZE = 32
CONTRACT = Preprocessing(height=SIZE, width=SIZE)
SIZES = ((48, 64), (40, 40), (33, 57), (64, 48))


def reference_small_map(image_rgb: np.ndarray) -> np.ndarray:
    """The red model's (32, 32) map, by hand."""
    r = to_network_input(image_rgb, CONTRACT, "RGB")[0]
    return 1.0 / (1.0 + np.exp(-(4.0 * r - 4.0)))


def reference_map(image_rgb: np.ndarray) -> np.ndarray:
    """The red model's map at the image's full resolution, by hand (the contract's upsampling)."""
    from fakelocator.contract import to_full_resolution

    return to_full_resolution(reference_small_map(image_rgb).astype(np.float32), *image_rgb.shape[:2])


def smooth_image(rng: np.random.Generator, h: int, w: int, red: tuple[int, int]) -> np.ndarray:
    """uint8 RGB, smooth random green/blue, red channel within ``red``."""
    import cv2

    low = rng.uniform(0, 255, (4, 4, 3)).astype(np.float32)
    image = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
    image[:, :, 0] = rng.uniform(*red, (h, w))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_rgb(path: Path, image_rgb: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(image_rgb[:, :, ::-1]))


def make_dataset(root: Path, *, n_pairs: int = 6, n_entire: int = 2, seed: int = 0, manifest: bool = False) -> Path:
    """``n_pairs`` real images with one red-patch fake each, ``n_entire`` red entire syntheses."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_pairs):
        h, w = SIZES[i % len(SIZES)]
        real = smooth_image(rng, h, w, (0, 40))
        fake = real.copy()
        y, x = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
        fake[y:y + h // 3, x:x + w // 3] = (255, 0, 0)
        write_rgb(root / "real" / f"r{i}.png", real)
        write_rgb(root / "fake" / f"r{i}.png", fake)
        rows += [(f"real/r{i}.png", "", "real", ""), (f"fake/r{i}.png", f"real/r{i}.png", "partial", "eyes" if i % 2 else "mouth")]
    for i in range(n_entire):
        h, w = SIZES[(i + 1) % len(SIZES)]
        write_rgb(root / "entire" / f"e{i}.png", smooth_image(rng, h, w, (215, 255)))
        rows.append((f"entire/e{i}.png", "", "entire", "entire"))
    if manifest:
        lines = ["image,real,kind,property"] + [",".join(r) for r in rows]
        (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def red_model(tmp_path_factory) -> Path:
    return build_red_model(tmp_path_factory.mktemp("models") / "red.onnx")


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "pairs", manifest=True)


@pytest.fixture(scope="session")
def locator(red_model):
    from fakelocator.runtime import Locator

    with Locator.load(red_model, backend="onnxruntime", device="cpu", batch_size=4, workers=2, threads=1) as loc:
        yield loc


@pytest.fixture(scope="session")
def by_hand():
    """The helpers tests need directly: the red model's maps by hand, dataset and model writers."""
    from types import SimpleNamespace

    return SimpleNamespace(small_map=reference_small_map, full_map=reference_map, make_dataset=make_dataset,
                           build_red_model=build_red_model, write_rgb=write_rgb, smooth_image=smooth_image)
