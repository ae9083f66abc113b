"""Calibration inputs for INT8 quantization: network inputs that look like what the runtime feeds.

Static quantization fixes one scale per activation tensor from the ranges it sees on calibration
inputs, so those inputs must be what the model will run on. The runtime feeds a ``native`` model
tiles of the image at its own scale (``fakelocator.tiling``) and a ``fit`` model the whole image
resized to the input (``contract.to_network_input``); calibration inputs are made the same way:

- default: half the inputs from the bundled photos (``training.synth.photos``; random windows at
  native scale, mirrored-padded when a photo is smaller, the runtime's tile rule), half from the
  training synthesis stream (``training.stream``: reals and manipulations, post-processed as in
  training) with the families the model was trained on (its provenance's ``stream.exclude`` stays
  out: the accuracy gate measures on those);
- ``folder``: the user's own images (recursively), the inputs spread evenly over them.

Every input comes from ``numpy.random.default_rng([seed, i])``: the same seed gives the same
inputs, hence the same quantized file. ``CalibrationSet.describe()`` is what the metadata records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fakelocator.contract import Preprocessing, to_network_input
from fakelocator.errors import FakeLocatorError
from fakelocator.tiling import normalize_tiles, pad_to

METHODS = ("minmax", "percentile", "entropy")
DEFAULT_TILES = 256
DEFAULT_STREAM_SHARE = 0.5


@dataclass(frozen=True)
class CalibrationConfig:
    """How calibration inputs are made.

    Args:
        tiles: network inputs to calibrate on (tiles in ``native`` analysis, whole images in ``fit``).
        seed: seed of every random choice (windows, stream items).
        method: ONNX Runtime's range estimator: "minmax" (the observed range), "percentile"
            (99.999th percentile of |x|) or "entropy" (KL divergence, TensorRT's legacy calibrator).
        folder: the user's images instead of the bundled photos and the stream.
        stream_share: default source only: the share of inputs drawn from the synthesis stream.
    """

    tiles: int = DEFAULT_TILES
    seed: int = 0
    method: str = "minmax"
    folder: str | None = None
    stream_share: float = DEFAULT_STREAM_SHARE

    def __post_init__(self):
        problems = []
        if not (isinstance(self.tiles, int) and self.tiles >= 1):
            problems.append(f"calibration tiles must be a positive integer, got {self.tiles!r}")
        if self.method not in METHODS:
            problems.append(f"calibration method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not 0.0 <= self.stream_share <= 1.0:
            problems.append(f"stream_share must be in [0, 1], got {self.stream_share}")
        if problems:
            raise FakeLocatorError("; ".join(problems))


@dataclass(frozen=True)
class CalibrationSet:
    """Calibration inputs, (N, 3, h, w) float32 under the preprocessing contract, and where they came from."""

    inputs: np.ndarray
    config: CalibrationConfig
    sources: dict[str, int]  # source → inputs taken from it
    analysis: str

    def describe(self) -> dict:
        return {
            "method": self.config.method, "tiles": int(len(self.inputs)), "seed": self.config.seed,
            "analysis": self.analysis, "sources": dict(self.sources),
            "folder": self.config.folder,
        }


def _window(image: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A random (h, w, 3) window at native scale; mirrored padding when the image is smaller (the tile rule)."""
    image = pad_to(image, max(h, image.shape[0]), max(w, image.shape[1]))
    y = int(rng.integers(0, image.shape[0] - h + 1))
    x = int(rng.integers(0, image.shape[1] - w + 1))
    return image[y:y + h, x:x + w]


def _to_input(image: np.ndarray, contract: Preprocessing, rng: np.random.Generator) -> np.ndarray:
    """One RGB uint8 image → one (3, h, w) network input as the runtime would make it."""
    if contract.native:
        tile = np.ascontiguousarray(_window(image, contract.height, contract.width, rng))
        rgb = tile if contract.color_order == "RGB" else tile[:, :, ::-1]
        return normalize_tiles(rgb[None], contract.mean, contract.std)[0]
    return to_network_input(np.ascontiguousarray(image), contract, "RGB")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _read_rgb(path: Path) -> np.ndarray:
    """An image file → uint8 (H, W, 3) RGB through the runtime's decoder (EXIF orientation, gray, alpha, 16-bit)."""
    from fakelocator.runtime.decode import decode_image

    return np.ascontiguousarray(decode_image(path.read_bytes(), str(path))[:, :, ::-1])


def _user_images(folder: str) -> list[Path]:
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FakeLocatorError(f"--calibration {folder}: not a folder")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FakeLocatorError(f"--calibration {folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in it")
    return paths


def calibration_set(contract: Preprocessing, config: CalibrationConfig, *, exclude_families: tuple[str, ...] = ()) -> CalibrationSet:
    """The calibration inputs for a model with this contract (see the module docstring)."""
    rng_of = lambda i: np.random.default_rng([config.seed, i])  # noqa: E731 - one seed per input
    inputs = np.empty((config.tiles, 3, contract.height, contract.width), np.float32)
    if config.folder is not None:
        paths = _user_images(config.folder)
        for i in range(config.tiles):
            inputs[i] = _to_input(_read_rgb(paths[i % len(paths)]), contract, rng_of(i))
        return CalibrationSet(inputs, config, {f"images in {config.folder}": config.tiles}, contract.analysis)

    from fakelocator.training.stream import Recipe, StreamConfig, make_item
    from fakelocator.training.synth.generate import single_threaded
    from fakelocator.training.synth.synthesize import load_photo

    n_stream = int(round(config.tiles * config.stream_share))
    recipe = Recipe(StreamConfig(crop=_stream_crop(contract), exclude=tuple(exclude_families))) if n_stream else None
    photos = recipe.photos if recipe is not None else _bundled()
    with single_threaded():
        for i in range(config.tiles):
            rng = rng_of(i)
            if i < n_stream:  # the stream's items are already (crop, crop) windows at native scale
                image = make_item(recipe, recipe.config.crop, rng).image
            else:
                image = load_photo(photos[int(rng.integers(len(photos)))])
                if rng.random() < 0.5:
                    image = image[:, ::-1]
            inputs[i] = _to_input(image, contract, rng)
    sources = {"synthesis stream": n_stream, "bundled photos": config.tiles - n_stream}
    return CalibrationSet(inputs, config, {k: v for k, v in sources.items() if v}, contract.analysis)


def _stream_crop(contract: Preprocessing) -> int:
    # the stream makes square crops of a multiple of 16; a fit model is fed them resized, as any image
    side = max(contract.height, contract.width)
    return max(16, (side + 15) // 16 * 16)


def _bundled():
    from fakelocator.training.synth.photos import collect_photos

    photos, _ = collect_photos()
    return photos
