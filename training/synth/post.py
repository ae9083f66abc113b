"""Post-processing after the edit: what happens to an image between its making and the model.

``postprocess(image, gt, rng)`` applies, each with its own probability, a mild resize (0.8–1.25×,
the image with area, linear or cubic interpolation drawn at random, the ground truth always
linear), additive Gaussian noise (σ up to 3 grey levels) and a JPEG round trip (quality 60–95,
OpenCV, in memory). The caller applies the same function to real images, so that "processed"
never means "fake". The ground truth only follows the geometry: it stays the map of what was
manipulated, not of what the compression later changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PostConfig:
    """Probabilities and ranges of ``postprocess``."""

    resize_probability: float = 0.3
    resize_range: tuple[float, float] = (0.8, 1.25)  # scale, drawn log-uniformly
    noise_probability: float = 0.25
    noise_sigma: tuple[float, float] = (0.0, 3.0)  # grey levels
    jpeg_probability: float = 0.5
    jpeg_quality: tuple[int, int] = (60, 95)  # inclusive
    jpeg_before_resize: float = 0.3  # how often a JPEG round trip comes first (a JPEG later rescaled)
    min_side: int = 16  # a resize never makes a side shorter than this


DEFAULT_POST = PostConfig()

_IMAGE_INTERP = ("area", "linear", "cubic")


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """uint8 (H, W, 3) RGB → the same image JPEG-encoded at ``quality`` and decoded (OpenCV)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"OpenCV could not JPEG-encode an image of shape {image.shape}")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])


def _resize(image, gt, scale, interp):
    import cv2

    h, w = image.shape[:2]
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    flag = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}[interp]
    image = cv2.resize(image, size, interpolation=flag)
    if gt is not None:
        gt = np.clip(cv2.resize(gt, size, interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return image, gt


def postprocess(image: np.ndarray, gt: np.ndarray | None, rng: np.random.Generator,
                cfg: PostConfig = DEFAULT_POST) -> tuple[np.ndarray, np.ndarray | None]:
    """Post-process ``image`` (uint8 (H, W, 3)) and its ground truth ``gt`` (float32 (H, W) or None).

    Returns the new image and ground truth, of the same (possibly resized) size. Draws the same
    number of values from ``rng`` whatever happens, so later draws do not depend on this one's.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"postprocess: image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if gt is not None and gt.shape != image.shape[:2]:
        raise ValueError(f"postprocess: ground truth {gt.shape} does not match image {image.shape[:2]}")
    u = rng.random(4)
    scale = float(np.exp(rng.uniform(*np.log(cfg.resize_range))))
    interp = _IMAGE_INTERP[int(rng.integers(len(_IMAGE_INTERP)))]
    sigma = float(rng.uniform(*cfg.noise_sigma))
    quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    noise_seed = int(rng.integers(2**63))
    do_resize = u[0] < cfg.resize_probability and min(image.shape[:2]) * scale >= cfg.min_side
    do_noise, do_jpeg = u[1] < cfg.noise_probability and sigma > 0, u[2] < cfg.jpeg_probability
    jpeg_first = u[3] < cfg.jpeg_before_resize

    if do_jpeg and jpeg_first:
        image = jpeg_roundtrip(image, quality)
    if do_resize:
        image, gt = _resize(image, gt, scale, interp)
    if do_noise:
        noise = np.random.default_rng(noise_seed).standard_normal(image.shape, np.float32) * np.float32(sigma)
        image = np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)
    if do_jpeg and not jpeg_first:
        image = jpeg_roundtrip(image, quality)
    if gt is not None:
        gt = np.ascontiguousarray(gt, np.float32)
    return np.ascontiguousarray(image), gt
