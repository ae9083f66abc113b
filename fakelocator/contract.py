"""The preprocessing contract: how an image becomes the network's input, and how a map goes back.

It is defined once, here. Training resizes and normalizes with these functions, every checkpoint
and exported model stores the contract in its metadata, and the runtime reads it back from the
model it loads, so training and serving cannot drift apart. The native kernels
(``native/``) implement the same arithmetic and are tested against these functions.

The rule, exactly:

1. the image is 8-bit, three channels, in a known channel order; it is put in ``color_order``;
2. it is resized, without keeping its aspect ratio, to ``height`` × ``width`` by bilinear
   interpolation with half-pixel centres (``src = (dst + 0.5) * in / out - 0.5``, clamped to the
   edge) and no antialiasing, computed in float32 on the 0..255 values (``resize_bilinear``; the same
   rule as OpenCV's ``INTER_LINEAR``, ``torch`` ``interpolate(..., mode="bilinear",
   align_corners=False)`` and ONNX ``Resize`` linear with ``half_pixel``);
3. each channel becomes ``(x / 255 - mean) / std``, laid out as (3, height, width) float32.

The network's map (height × width) goes back to an image's full resolution by the same bilinear
rule, then is clipped to [0, 1].

That is the ``fit`` analysis, the paper's. The contract's ``analysis`` field chooses between it and
``native``, where step 2 is replaced by cutting the image into ``height`` × ``width`` tiles at its own
scale (overlap ``tile_overlap``, mirrored padding, never resampled), and the tile maps are stitched
back with the ``tile_window`` blend and the tile scores pooled by ``tile_pooling``: the exact rule is
``fakelocator.tiling``. A model saved before the field existed loads as ``fit``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache

import numpy as np

from fakelocator.errors import FakeLocatorError
from fakelocator.tiling import PADS, POOLINGS, WINDOWS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_RULES = ("bilinear_half_pixel",)
COLOR_ORDERS = ("RGB", "BGR")
ANALYSES = ("fit", "native")


@dataclass(frozen=True)
class Preprocessing:
    """How images are fed to one trained network. Saved with the network, never guessed."""

    height: int = 224
    width: int = 224
    color_order: str = "RGB"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resize: str = "bilinear_half_pixel"
    map_resize: str = "bilinear_half_pixel"
    # How an image meets the network (fakelocator.tiling). "fit": resized to height × width, the
    # map upsampled back (the paper's rule, and every model saved before this field existed).
    # "native": height × width tiles at the image's own scale, maps stitched, scores pooled.
    analysis: str = "fit"
    tile_overlap: int = 32
    tile_window: str = "linear"
    tile_pad: str = "symmetric"
    tile_pooling: str = "max"

    def __post_init__(self):
        for name in ("mean", "std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        problems = []
        if not (isinstance(self.height, int) and isinstance(self.width, int)) or min(self.height, self.width) < 8:
            problems.append(f"height and width must be integers >= 8, got {self.height}x{self.width}")
        if self.color_order not in COLOR_ORDERS:
            problems.append(f"color_order must be one of {COLOR_ORDERS}, got {self.color_order!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            problems.append(f"mean and std need three values each, std > 0; got {self.mean}, {self.std}")
        for name in ("resize", "map_resize"):
            if getattr(self, name) not in RESIZE_RULES:
                problems.append(f"{name} must be one of {RESIZE_RULES}, got {getattr(self, name)!r}")
        for name, allowed in (("analysis", ANALYSES), ("tile_window", WINDOWS), ("tile_pad", PADS),
                              ("tile_pooling", POOLINGS)):
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not isinstance(self.tile_overlap, int) or self.tile_overlap < 0 or (
                self.analysis == "native" and self.tile_overlap >= min(self.height, self.width) // 2):
            problems.append(f"tile_overlap must be an integer in [0, half the tile), got {self.tile_overlap!r}")
        if problems:
            raise FakeLocatorError("invalid preprocessing contract: " + "; ".join(problems))

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the network input (in ``native`` analysis, the tile size)."""
        return self.height, self.width

    @property
    def native(self) -> bool:
        return self.analysis == "native"

    def with_analysis(self, analysis: str | None = None, *, tile_overlap: int | None = None,
                      tile_pooling: str | None = None) -> "Preprocessing":
        """This contract with the analysis (and tile options) a user asked for; None keeps the model's."""
        changes = {k: v for k, v in (("analysis", analysis), ("tile_overlap", tile_overlap),
                                     ("tile_pooling", tile_pooling)) if v is not None}
        return replace(self, **changes) if changes else self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise FakeLocatorError(
                f"preprocessing contract has unknown fields {sorted(unknown)}; "
                "the model was made by a newer fakelocator"
            )
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "Preprocessing":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise FakeLocatorError(f"preprocessing contract is not valid JSON: {e}") from None
        return cls.from_dict(d)


@lru_cache(maxsize=64)
def _axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (i0, i1) and float32 weights (w0, w1) along one axis.

    The source coordinate ``(d + 0.5) * in / out - 0.5`` is computed in float64 and clamped to
    [0, in − 1], so the weights carry no coordinate rounding (OpenCV's plain C path computes it in
    float32, which moves 1080p → 224 results by up to 0.02 on the 0..255 scale).
    """
    d = np.arange(n_out, dtype=np.float64)
    f = np.clip((d + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    i0 = np.floor(f).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = (f - i0).astype(np.float32)
    w0 = (1.0 - (f - i0)).astype(np.float32)
    for a in (i0, i1, w0, w1):
        a.flags.writeable = False
    return i0, i1, w0, w1


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The contract's resize: bilinear, half-pixel centres, clamped edges, no antialiasing, float32.

    ``image`` is (H, W) or (H, W, C) of any real dtype; the result is float32 of the same rank.
    Each output pixel reads only the 2 × 2 source pixels it needs (horizontal pass, then vertical),
    so shrinking a 24-megapixel photo costs about as much as a 224² one. This is the reference the
    native kernels and the runtime are tested against. OpenCV's ``INTER_LINEAR`` on a float32 image
    follows the same rule within ~0.02 on the 0..255 scale (more on single-row or single-column
    images), which is why the contract does not call it.
    """
    src = np.asarray(image)
    flat = src.ndim == 2
    if flat:
        src = src[:, :, None]
    y0, y1, b0, b1 = _axis(src.shape[0], height)
    x0, x1, a0, a1 = _axis(src.shape[1], width)
    a0, a1 = a0[None, :, None], a1[None, :, None]
    top, bottom = src[y0], src[y1]  # (height, W, C)
    h0 = top[:, x0] * a0 + top[:, x1] * a1  # (height, width, C) float32
    h1 = bottom[:, x0] * a0 + bottom[:, x1] * a1
    out = (h0 * b0[:, None, None] + h1 * b1[:, None, None]).astype(np.float32, copy=False)
    return out[:, :, 0] if flat else out


def check_color_image(image: np.ndarray, what: str = "image") -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise FakeLocatorError(f"{what} must be a uint8 array of shape (H, W, 3), got {dtype} {shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise FakeLocatorError(f"{what} is empty: shape {image.shape}")


def to_network_input(image: np.ndarray, contract: Preprocessing, color_order: str) -> np.ndarray:
    """One uint8 (H, W, 3) image in ``color_order`` → (3, height, width) float32 network input."""
    check_color_image(image)
    if color_order not in COLOR_ORDERS:
        raise FakeLocatorError(f"color_order must be one of {COLOR_ORDERS}, got {color_order!r}")
    if color_order != contract.color_order:
        image = image[:, :, ::-1]
    x = resize_bilinear(image, contract.height, contract.width)  # (h, w, 3) on the 0..255 scale
    mean = np.asarray(contract.mean, np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(contract.std, np.float32) * 255.0)
    x = (x - mean) * inv_std
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def to_network_tiles(image: np.ndarray, contract: Preprocessing, color_order: str):
    """One uint8 (H, W, 3) image in ``color_order`` → ((n, 3, height, width) float32 tiles, TileGrid), ``native`` rule."""
    from fakelocator.tiling import TileGrid, extract_tiles, normalize_tiles

    check_color_image(image)
    if color_order not in COLOR_ORDERS:
        raise FakeLocatorError(f"color_order must be one of {COLOR_ORDERS}, got {color_order!r}")
    if color_order != contract.color_order:
        image = image[:, :, ::-1]
    grid = TileGrid.of(image.shape[0], image.shape[1], contract.height, contract.width, contract.tile_overlap)
    return normalize_tiles(extract_tiles(image, grid), contract.mean, contract.std), grid


def to_full_resolution(fakeness: np.ndarray, height: int, width: int) -> np.ndarray:
    """A network map (h, w) → float32 (height, width) in [0, 1], by the contract's bilinear rule.

    Upsampling writes every output pixel, so this uses OpenCV's vectorized ``INTER_LINEAR`` (25×
    faster than ``resize_bilinear`` at 1080p); on maps in [0, 1] it stays within 2e-5 of the rule.
    """
    import cv2

    if fakeness.ndim != 2:
        raise FakeLocatorError(f"a fakeness map must be 2-D, got shape {fakeness.shape}")
    src = np.ascontiguousarray(fakeness, dtype=np.float32)
    out = src.copy() if src.shape == (height, width) else cv2.resize(src, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0, out=out)
