"""Seeded, photo-like benchmark inputs, encoded as JPEG so that decoding is real work.

Three kinds (``KINDS``): ``1080p`` video frames (1920 × 1080), ``crop256`` face crops (256 × 256)
and ``direct224`` images already at the network's size (224 × 224). Random uniform noise would be a
poor stand-in: it compresses badly, so its JPEG files are several times larger than a photo's and
decode slower. These images are smooth multi-octave colour fields (1/f spectrum, as natural images
roughly have) with a face-like ellipse and mild sensor noise; at quality 90 a 1080p frame is about
about 0.3 MB (a real frame grabbed from a video at that quality is typically 0.2-0.6 MB). ``InputPool.describe()``
records the actual sizes in bench.json.

A pool holds a few distinct images per kind (``size``, default 16) that the benchmark cycles
through, so that generating inputs does not dominate a long run and the decoder does not just
re-read one cached file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fakelocator.errors import FakeLocatorError

#: name → (height, width)
KINDS: dict[str, tuple[int, int]] = {"1080p": (1080, 1920), "crop256": (256, 256), "direct224": (224, 224)}
JPEG_QUALITY = 90


def synthetic_photo(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A photo-like (height, width, 3) uint8 BGR image."""
    import cv2

    side = max(height, width)
    field = np.zeros((height, width, 3), np.float32)
    for cells in (2, 4, 8, 16, 32, 64, 128, 256):  # coarse to fine; amplitude ∝ 1/√frequency
        gh, gw = max(2, cells * height // side), max(2, cells * width // side)
        grid = rng.normal(0.0, 1.0, (gh, gw, 3)).astype(np.float32)
        field += cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR) * np.float32(40.0 / cells**0.5)
    field += rng.uniform(60, 190, 3).astype(np.float32)

    # Edges, as real contours give: random lines and a face-like ellipse (skin, eyes, mouth).
    scale = min(height, width)
    for _ in range(12):
        p0 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        color = tuple(float(c) for c in rng.uniform(0, 255, 3))
        cv2.line(field, p0, p1, color, max(1, int(scale * rng.uniform(0.002, 0.02))), cv2.LINE_AA)
    center = (int(rng.uniform(0.35, 0.65) * width), int(rng.uniform(0.35, 0.65) * height))
    ry = int(rng.uniform(0.25, 0.4) * scale)
    rx = int(ry * rng.uniform(0.7, 0.85))
    face = np.zeros((height, width), np.uint8)
    cv2.ellipse(face, center, (rx, ry), 0, 0, 360, 255, -1, cv2.LINE_AA)
    skin = np.full_like(field, 0)
    skin[...] = np.array([120, 150, 200], np.float32) + rng.normal(0, 15, 3).astype(np.float32)
    alpha = face.astype(np.float32)[:, :, None] * np.float32(0.65 / 255)
    image = field * (1 - alpha) + skin * alpha
    cx, cy = center
    def blob(x: float, y: float, ax: float, ay: float, color: tuple) -> None:
        cv2.ellipse(image, (int(x), int(y)), (max(1, int(ax)), max(1, int(ay))), 0, 0, 360, color, -1, cv2.LINE_AA)

    for ex in (-0.4, 0.4):  # eyes
        blob(cx + ex * rx, cy - 0.2 * ry, 0.15 * rx, 0.08 * ry, (40, 35, 30))
    blob(cx, cy + 0.45 * ry, 0.35 * rx, 0.06 * ry, (70, 60, 150))  # mouth

    image += rng.normal(0.0, 3.0, image.shape).astype(np.float32)  # sensor noise
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def encode_jpeg(image_bgr: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise FakeLocatorError("OpenCV could not encode a JPEG")
    return buf.tobytes()


@dataclass(frozen=True)
class InputPool:
    """``size`` distinct JPEG-encoded images of one kind; ``item(i)`` cycles through them."""

    kind: str
    height: int
    width: int
    encoded: tuple[bytes, ...]
    seed: int

    def __len__(self) -> int:
        return len(self.encoded)

    def item(self, i: int) -> bytes:
        return self.encoded[i % len(self.encoded)]

    def items(self, start: int, count: int) -> list[bytes]:
        return [self.item(start + k) for k in range(count)]

    def describe(self) -> dict:
        sizes = [len(e) for e in self.encoded]
        return {
            "kind": self.kind,
            "height": self.height,
            "width": self.width,
            "format": f"JPEG quality {JPEG_QUALITY}",
            "distinct_images": len(sizes),
            "seed": self.seed,
            "mean_bytes": float(np.mean(sizes)),
            "min_bytes": int(min(sizes)),
            "max_bytes": int(max(sizes)),
        }


def make_pool(kind: str, *, size: int = 16, seed: int = 0) -> InputPool:
    """A seeded pool of ``size`` JPEG images of ``kind`` (one of ``KINDS``)."""
    if kind not in KINDS:
        raise FakeLocatorError(f"unknown input kind {kind!r}; choose from {', '.join(KINDS)}")
    if size < 1:
        raise FakeLocatorError(f"the input pool needs at least one image, got {size}")
    height, width = KINDS[kind]
    rng = np.random.default_rng([seed, list(KINDS).index(kind)])
    encoded = tuple(encode_jpeg(synthetic_photo(height, width, rng)) for _ in range(size))
    return InputPool(kind, height, width, encoded, seed)
