"""Turn whatever the user hands us (a path, encoded bytes, an array) into one uint8 (H, W, 3) image.

Rules, the same for every source:

- grayscale becomes three equal channels;
- an alpha channel is dropped, not composited: the map describes the colour values as stored, and
  compositing over an arbitrary background would change the very pixels a generator produced;
- 16-bit images are scaled to 8 bits by ``round(v / 257)`` (65535 → 255);
- palette images are expanded to their colours; EXIF orientation is applied, so a map lines up with
  the image as viewers show it (``width``/``height`` are those of the oriented image);
- multi-frame GIF/TIFF files give their first frame;
- floating-point images are refused (their scale is not knowable).

A file is refused, with an ``InputError`` naming the reason, when it is missing, unreadable, empty,
truncated, not an image in a supported format, corrupt, or larger than ``max_pixels`` according to
its header (checked before decoding).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fakelocator.errors import InputError
from fakelocator.runtime.headers import probe

#: Images over this many pixels are refused from their header (64 megapixels = 8000 × 8000).
DEFAULT_MAX_PIXELS = 64_000_000

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".dib", ".gif", ".tif", ".tiff", ".pbm", ".pgm", ".ppm", ".pnm"}
)
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".mts", ".3gp", ".ogv"}
)

COLOR_ORDERS = ("BGR", "RGB")


def is_video_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def read_file(path: str | os.PathLike) -> bytes:
    """The file's bytes; InputError if it is missing, a folder, unreadable or empty."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise InputError(source, "no such file") from None
    except IsADirectoryError:
        raise InputError(source, "is a folder, not a file") from None
    except PermissionError:
        raise InputError(source, "permission denied") from None
    except OSError as e:
        raise InputError(source, f"cannot be read ({e.strerror or e})") from None
    if not data:
        raise InputError(source, "empty file")
    return data


def too_large(width: int, height: int, max_pixels: int) -> str:
    return f"{width}x{height} is {width * height:,} pixels, over the limit of {max_pixels:,} (max_pixels)"


def decode_image(data: bytes, source: str, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Encoded bytes → uint8 (H, W, 3) BGR image, after the header and completeness checks."""
    import cv2

    header = probe(data, source)
    if max_pixels is not None and header.pixels > max_pixels:
        raise InputError(source, too_large(header.width, header.height, max_pixels))
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    if image is None or image.size == 0:
        raise InputError(source, f"corrupt {header.format.upper()} data (the decoder rejected it)")
    return to_color_image(image, "BGR", source)


def to_color_image(image: np.ndarray, color_order: str, source: str) -> np.ndarray:
    """A gray, 3- or 4-channel, 8- or 16-bit array → uint8 (H, W, 3) in the same channel order.

    ``color_order`` names the order of the first three channels ("BGR" covers BGRA too); it is only
    checked here, the caller keeps track of it.
    """
    if color_order not in COLOR_ORDERS:
        raise InputError(source, f"color_order must be one of {COLOR_ORDERS}, got {color_order!r}")
    if not isinstance(image, np.ndarray):
        raise InputError(source, f"expected a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise InputError(source, f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(source, f"empty image (shape {image.shape})")
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(source, f"expected uint8 or uint16 pixels, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:
        return image[:, :, :3]
    return image


def load_image(
    item: str | os.PathLike | bytes | bytearray | memoryview | np.ndarray,
    *,
    color_order: str = "BGR",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    source: str | None = None,
) -> tuple[np.ndarray, str, str]:
    """Any accepted input → (uint8 (H, W, 3) image, its channel order, a name for messages).

    Paths and bytes are decoded (BGR); arrays are taken in ``color_order`` and not copied when
    already uint8 with three channels. ``max_pixels`` applies to all of them.
    """
    if isinstance(item, np.ndarray):
        name = source or "<array>"
        image = to_color_image(item, color_order, name)
        if max_pixels is not None and image.shape[0] * image.shape[1] > max_pixels:
            raise InputError(name, too_large(image.shape[1], image.shape[0], max_pixels))
        return image, color_order, name
    if isinstance(item, (bytes, bytearray, memoryview)):
        name = source or "<bytes>"
        return decode_image(bytes(item), name, max_pixels=max_pixels), "BGR", name
    if isinstance(item, (str, os.PathLike)):
        name = source or os.fspath(item)
        if is_video_path(item):
            raise InputError(name, "is a video; use locate_video")
        return decode_image(read_file(item), name, max_pixels=max_pixels), "BGR", name
    raise InputError(source or "<input>", f"expected a path, bytes or a numpy array, got {type(item).__name__}")
