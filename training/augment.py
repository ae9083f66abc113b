"""Partial data augmentation (Sec. IV-D). Torch-free.

The paper augments the real images only (``p_real = 1``, ``p_fake = 0``): showing the model the
widest distribution of real images teaches it that anything outside that distribution is fake,
which generalizes across GAN methods better than augmenting both (Tables I, VII, VIII). Both
probabilities are configurable to reproduce the ablation ``real(p_real)fake(p_fake)``.

An image chosen for augmentation goes through this chain, each step with its own probability and a
strength drawn uniformly from its range (the paper names the degradations but not their ranges;
these defaults are ours):

1. horizontal flip (geometric: the ground-truth and attention maps are flipped with the image);
2. colour jitter: brightness, contrast, saturation, hue, in that order;
3. low resolution, 4. Gaussian blur, 5. Gaussian noise, 6. JPEG, from ``fakelocator.degradations``
   (JPEG last, as the final step of a real capture-and-share pipeline).

Photometric steps change the image only. For a partial fake (``p_fake > 0``) the ground truth stays
the Eq. 7 map of the pair as given: it says where the GAN changed the face, which a later JPEG or
blur does not move, and a map recomputed against the degraded fake would mark every pixel as fake
and teach the model that degradation itself is fakeness (the opposite of what partial augmentation
is for). The robustness *evaluation* of Sec. V-B8 does recompute it against the degraded fake;
that is the evaluation's protocol, not training's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from fakelocator import degradations
from fakelocator.errors import FakeLocatorError


@dataclass(frozen=True)
class AugmentConfig:
    """Which images are augmented, and how.

    Args:
        p_real: probability that a real image goes through the chain (paper: 1.0).
        p_fake: probability that a fake (partial or entire) image does (paper: 0.0).
        p_hflip, p_color, p_lowres, p_blur, p_noise, p_jpeg: probability of each step for an image
            that goes through the chain.
        brightness, contrast, saturation: jitter factors are drawn from ``[1 - v, 1 + v]``.
        hue: hue shift drawn from ``[-hue, hue]`` as a fraction of the colour circle.
        lowres_ratio: range of the per-side reduction ratio (>= 1).
        blur_kernel: range of the odd Gaussian kernel size (pixels, inclusive).
        noise_variance: range of the noise variance on the 0..1 scale.
        jpeg_quality: range of the JPEG quality (inclusive).
    """

    p_real: float = 1.0
    p_fake: float = 0.0
    p_hflip: float = 0.5
    p_color: float = 0.5
    p_lowres: float = 0.2
    p_blur: float = 0.2
    p_noise: float = 0.2
    p_jpeg: float = 0.3
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02
    lowres_ratio: tuple[float, float] = (1.25, 3.0)
    blur_kernel: tuple[int, int] = (3, 7)
    noise_variance: tuple[float, float] = (1e-4, 2e-3)
    jpeg_quality: tuple[int, int] = (50, 95)

    def __post_init__(self):
        problems = []
        for f in fields(self):
            if f.name.startswith("p_") and not 0 <= getattr(self, f.name) <= 1:
                problems.append(f"{f.name} must be a probability in [0, 1], got {getattr(self, f.name)}")
        for name in ("lowres_ratio", "blur_kernel", "noise_variance", "jpeg_quality"):
            value = tuple(getattr(self, name))
            if len(value) != 2 or value[0] > value[1]:
                problems.append(f"{name} must be a (low, high) range, got {value}")
            object.__setattr__(self, name, value)
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) < 1:
                problems.append(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5:
            problems.append(f"hue must be in [0, 0.5], got {self.hue}")
        if not problems:
            if self.lowres_ratio[0] < 1:
                problems.append(f"lowres_ratio must be >= 1, got {self.lowres_ratio}")
            if self.blur_kernel[0] < 1 or self.blur_kernel[0] % 2 == 0 or self.blur_kernel[1] % 2 == 0:
                problems.append(f"blur_kernel bounds must be odd and >= 1, got {self.blur_kernel}")
            if self.noise_variance[0] < 0:
                problems.append(f"noise_variance must be >= 0, got {self.noise_variance}")
            if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
                problems.append(f"jpeg_quality must lie in 1..100, got {self.jpeg_quality}")
        if problems:
            raise FakeLocatorError("invalid augmentation config: " + "; ".join(problems))

    @property
    def enabled(self) -> bool:
        return self.p_real > 0 or self.p_fake > 0

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "AugmentConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise FakeLocatorError(f"augmentation config has unknown fields {sorted(unknown)}")
        return cls(**d)


def color_jitter(
    image: np.ndarray, *, brightness: float = 1.0, contrast: float = 1.0, saturation: float = 1.0, hue: float = 0.0
) -> np.ndarray:
    """Scale brightness, contrast and saturation by the given factors (1 = unchanged) and rotate the
    hue by ``hue`` turns, on a uint8 (H, W, 3) RGB image (torchvision's definitions, BT.601 grey)."""
    import cv2

    x = image.astype(np.float32)  # (H, W, 3) on 0..255
    if brightness != 1.0:
        x = np.clip(x * brightness, 0, 255)
    if contrast != 1.0:
        mean = float(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).mean())
        x = np.clip((x - mean) * contrast + mean, 0, 255)
    if saturation != 1.0:
        grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[:, :, None]
        x = np.clip((x - grey) * saturation + grey, 0, 255)
    if hue != 0.0:
        hsv = cv2.cvtColor(x / 255.0, cv2.COLOR_RGB2HSV)  # H in degrees
        hsv[:, :, 0] = np.mod(hsv[:, :, 0] + hue * 360.0, 360.0)
        x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _uniform(rng: np.random.Generator, bounds) -> float:
    return float(rng.uniform(bounds[0], bounds[1])) if bounds[1] > bounds[0] else float(bounds[0])


def apply_chain(
    image: np.ndarray, maps: list[np.ndarray], config: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    """Run the augmentation chain on one image; ``maps`` ((H, W) arrays) follow the geometric steps.

    Returns the new image, the maps and the names of the steps applied (``"jpeg(q=71)"`` ...).
    """
    applied = []
    if rng.random() < config.p_hflip:
        image = np.ascontiguousarray(image[:, ::-1])
        maps = [np.ascontiguousarray(m[:, ::-1]) for m in maps]
        applied.append("hflip")
    if rng.random() < config.p_color:
        b = _uniform(rng, (1 - config.brightness, 1 + config.brightness))
        c = _uniform(rng, (1 - config.contrast, 1 + config.contrast))
        s = _uniform(rng, (1 - config.saturation, 1 + config.saturation))
        h = _uniform(rng, (-config.hue, config.hue))
        image = color_jitter(image, brightness=b, contrast=c, saturation=s, hue=h)
        applied.append(f"color(b={b:.2f},c={c:.2f},s={s:.2f},h={h:+.3f})")
    if rng.random() < config.p_lowres:
        ratio = _uniform(rng, config.lowres_ratio)
        image = degradations.low_resolution(image, ratio)
        applied.append(f"lowres(r={ratio:.2f})")
    if rng.random() < config.p_blur:
        k = 2 * int(rng.integers(config.blur_kernel[0] // 2, config.blur_kernel[1] // 2 + 1)) + 1
        image = degradations.gaussian_blur(image, k)
        applied.append(f"blur(k={k})")
    if rng.random() < config.p_noise:
        var = _uniform(rng, config.noise_variance)
        image = degradations.gaussian_noise(image, var, rng)
        applied.append(f"noise(var={var:.2g})")
    if rng.random() < config.p_jpeg:
        q = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
        image = degradations.jpeg(image, q)
        applied.append(f"jpeg(q={q})")
    return image, maps, applied


def augment_sample(
    image: np.ndarray, maps: list[np.ndarray], is_fake: bool, config: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    """Partial augmentation: the chain runs with probability ``p_fake`` for fakes, ``p_real`` for reals."""
    p = config.p_fake if is_fake else config.p_real
    if p <= 0 or rng.random() >= p:
        return image, maps, []
    return apply_chain(image, maps, config, rng)
