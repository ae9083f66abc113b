"""The face-attention map of Sec. IV-C: Blur(FPM(X', p)).

The paper's third step "uses the blur method to expand the white region", because "the region
outside modified properties also has reference significance; however, their weight should not be
higher than the regions of modified properties". We make that exact with a Gaussian fall-off of
the distance to the region:

    A(x) = floor + (1 - floor) * exp(-d(x)^2 / (2 sigma^2)),   sigma = spread * min(H, W)

where d(x) is the Euclidean distance from pixel x to the nearest region pixel. So A = 1 on the
region, decreases monotonically away from it, and never drops below ``floor`` (> 0 keeps the rest
of the face in play; < 1 keeps it below the region). Unlike a plain Gaussian blur of the binary
mask, it does not dim the region's own edges to 0.5, and ``spread`` is relative to the image, so a
128 px CelebA crop and a 1024 px FFHQ image get the same map. Torch-free.
"""

from __future__ import annotations

import numpy as np

from fakelocator.errors import FakeLocatorError

#: sigma of the fall-off as a fraction of the image's shorter side (5 % ≈ 6 px at 128, 51 px at 1024).
DEFAULT_SPREAD = 0.05
#: The weight far from the region.
DEFAULT_FLOOR = 0.25
#: The distance transform runs on a grid of at most this many pixels per side (then is resized).
WORK_SIDE = 512


def check_blur(spread: float, floor: float) -> None:
    if not spread >= 0:
        raise FakeLocatorError(f"attention spread must be >= 0, got {spread}")
    if not 0 <= floor <= 1:
        raise FakeLocatorError(f"attention floor must be in [0, 1], got {floor}")


def attention_map(
    region: np.ndarray, height: int, width: int, *, spread: float = DEFAULT_SPREAD, floor: float = DEFAULT_FLOOR
) -> np.ndarray:
    """float32 (height, width) attention in [floor, 1] from a bool region mask of any resolution.

    The mask is stretched to (height, width) (label maps come from a parser that saw the image
    stretched to its square input). An empty region gives ``floor`` everywhere.
    """
    import cv2

    check_blur(spread, floor)
    region = np.asarray(region, dtype=bool)
    scale = min(1.0, WORK_SIDE / max(height, width))
    wh, ww = max(1, round(height * scale)), max(1, round(width * scale))
    mask = cv2.resize(region.astype(np.uint8), (ww, wh), interpolation=cv2.INTER_NEAREST_EXACT)
    if not mask.any():
        return np.full((height, width), floor, np.float32)
    sigma = spread * min(wh, ww)
    if sigma > 0:
        distance = cv2.distanceTransform((mask == 0).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        falloff = np.exp(-0.5 * np.square(distance / np.float32(sigma)))
    else:
        falloff = mask.astype(np.float32)
    work = (np.float32(floor) + np.float32(1 - floor) * falloff).astype(np.float32)  # (wh, ww)
    if (wh, ww) == (height, width):
        return work
    full = cv2.resize(work, (width, height), interpolation=cv2.INTER_LINEAR)
    inside = cv2.resize(region.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
    return np.maximum(full, inside.astype(np.float32))
