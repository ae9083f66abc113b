"""Real-world image degradations of the paper (Sec. IV-D augmentation, Sec. V-B8 robustness).

Training's partial data augmentation and the evaluation's robustness sweeps both use these
functions, so a "JPEG at quality 70" means the same thing everywhere. Each takes a uint8
(H, W, 3) image and returns a new uint8 (H, W, 3) image of the same size; each is a pure function
of its arguments (``gaussian_noise`` draws from the generator it is given), so a seed fixes the
result. Torch-free: numpy and OpenCV only.

Parameters, as the paper's Fig. 15 axes name them:

- ``jpeg(image, quality)``: encode to JPEG at ``quality`` (1..100, OpenCV's libjpeg, 4:2:0 chroma)
  and decode, i.e. "converting an image from PNG format to JPEG format";
- ``gaussian_blur(image, kernel_size)``: Gaussian filter of odd ``kernel_size`` ("filter size");
  sigma is OpenCV's default for that size, ``0.3·((k − 1)/2 − 1) + 0.8``, unless given;
- ``gaussian_noise(image, variance, rng)``: additive zero-mean Gaussian noise whose ``variance``
  is on the **0..1 intensity scale** (as ``skimage.util.random_noise``): variance 0.01 is a standard
  deviation of 0.1, i.e. 25.5 grey levels. Rounded to the nearest level and clipped to 0..255;
- ``low_resolution(image, ratio)``: shrink each side by ``ratio`` (>= 1; 2 halves width and height)
  with bilinear interpolation, then restore the original size with bilinear interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from fakelocator.contract import COLOR_ORDERS, check_color_image
from fakelocator.errors import FakeLocatorError


def jpeg(image: np.ndarray, quality: int, *, color_order: str = "RGB") -> np.ndarray:
    """JPEG-compress and decode. ``color_order`` tells which channel is red, so chroma is subsampled right."""
    import cv2

    check_color_image(image)
    if color_order not in COLOR_ORDERS:
        raise FakeLocatorError(f"color_order must be one of {COLOR_ORDERS}, got {color_order!r}")
    if not (isinstance(quality, (int, np.integer)) and 1 <= quality <= 100):
        raise FakeLocatorError(f"JPEG quality must be an integer in 1..100, got {quality!r}")
    bgr = image[:, :, ::-1] if color_order == "RGB" else image
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise FakeLocatorError(f"OpenCV could not JPEG-encode an image of shape {image.shape}")
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(out[:, :, ::-1] if color_order == "RGB" else out)


def gaussian_blur(image: np.ndarray, kernel_size: int, sigma: float | None = None) -> np.ndarray:
    """Gaussian blur with an odd ``kernel_size`` × ``kernel_size`` kernel; 1 is the identity.

    Borders reflect (OpenCV's default).
    """
    import cv2

    check_color_image(image)
    if not (isinstance(kernel_size, (int, np.integer)) and kernel_size >= 1 and kernel_size % 2 == 1):
        raise FakeLocatorError(f"blur kernel size must be an odd integer >= 1, got {kernel_size!r}")
    if sigma is not None and sigma <= 0:
        raise FakeLocatorError(f"blur sigma must be > 0, got {sigma}")
    if kernel_size == 1:
        return image.copy()
    k, s = int(kernel_size), float(sigma or 0.0)  # sigma 0: OpenCV derives it from the size
    return cv2.GaussianBlur(image, (k, k), sigmaX=s, sigmaY=s)


def gaussian_noise(image: np.ndarray, variance: float, rng: np.random.Generator | int) -> np.ndarray:
    """Add N(0, ``variance``) noise on the 0..1 scale; ``rng`` is a numpy Generator or a seed."""
    check_color_image(image)
    if not (np.isfinite(variance) and variance >= 0):
        raise FakeLocatorError(f"noise variance must be a finite number >= 0, got {variance!r}")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(np.sqrt(variance) * 255.0)
    out = np.rint(image.astype(np.float32) + noise)
    return np.clip(out, 0, 255).astype(np.uint8)


def low_resolution(image: np.ndarray, ratio: float) -> np.ndarray:
    """Down by ``ratio`` per side (at least 1 pixel), back up to the original size, both bilinear."""
    import cv2

    check_color_image(image)
    if not (np.isfinite(ratio) and ratio >= 1):
        raise FakeLocatorError(f"low-resolution ratio must be >= 1 (2 halves each side), got {ratio!r}")
    h, w = image.shape[:2]
    small_h, small_w = max(1, int(round(h / ratio))), max(1, int(round(w / ratio)))
    if (small_h, small_w) == (h, w):
        return image.copy()
    small = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class Degradation:
    """One named degradation and the meaning of its single strength parameter."""

    name: str
    parameter: str
    function: Callable[..., np.ndarray]
    needs_rng: bool = False


DEGRADATIONS: dict[str, Degradation] = {
    d.name: d
    for d in (
        Degradation("jpeg", "quality (1..100, lower is stronger)", jpeg),
        Degradation("blur", "kernel size (odd, pixels)", gaussian_blur),
        Degradation("noise", "variance on the 0..1 scale", gaussian_noise, needs_rng=True),
        Degradation("lowres", "reduction ratio per side (>= 1)", low_resolution),
    )
}


def degrade(image: np.ndarray, name: str, level, *, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Apply the degradation ``name`` (a key of ``DEGRADATIONS``) at strength ``level``.

    ``rng`` is needed by ``noise`` only; ``None`` there means seed 0, so sweeps are reproducible.
    """
    if name not in DEGRADATIONS:
        raise FakeLocatorError(f"unknown degradation {name!r}; choose one of {', '.join(DEGRADATIONS)}")
    d = DEGRADATIONS[name]
    if d.needs_rng:
        return d.function(image, level, 0 if rng is None else rng)
    return d.function(image, level)
