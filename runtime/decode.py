"""Turn whatever the user hands us (a path, encoded bytes, an array) into one uint8 (H, W, 3) image.

Rules, the same for every source:

- grayscale becomes three equal channels;
- an alpha channel is dropped, not composited: the map describes the colour values as stored, and
  compositing over an arbitrary background would change the very pixels a generator produced
  (a TIFF's unassociated alpha too, which libtiff would otherwise multiply into the colours);
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
import stat
from pathlib import Path
from typing import Callable

import numpy as np

from fakelocator.errors import InputError
from fakelocator.runtime.headers import FileView, TiffDirectory, probe, probe_header

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


#: A file may hold this much besides its pixels (EXIF, ICC profiles, XMP, thumbnails, other pages).
METADATA_ALLOWANCE = 64 * 2**20
#: The most bytes one pixel can take in a supported format: 8 for 16-bit RGBA stored raw, doubled
#: for the worst case of compression overhead (deflate's stored blocks, RLE, row padding).
MAX_BYTES_PER_PIXEL = 16


def max_file_size(width: int, height: int) -> int:
    """The largest file a ``width`` x ``height`` image can plausibly be; larger ones are refused unread."""
    return METADATA_ALLOWANCE + MAX_BYTES_PER_PIXEL * width * height


_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def open_regular(path: str | os.PathLike) -> tuple[int, int]:
    """Open ``path`` for reading if it is a regular file: (file descriptor, size in bytes).

    Anything else (a FIFO, a device such as /dev/zero, a socket, a folder) is refused without
    reading from it; the open itself does not block on a FIFO (O_NONBLOCK).
    """
    source = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(source, flags)
    except FileNotFoundError:
        raise InputError(source, "no such file") from None
    except IsADirectoryError:
        raise InputError(source, "is a folder, not a file") from None
    except PermissionError:
        raise InputError(source, "permission denied") from None
    except OSError as e:
        raise InputError(source, f"cannot be read ({e.strerror or e})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputError(source, "is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
            raise InputError(source, f"is {kind}, not a regular file; only regular files are read")
        if info.st_size == 0:
            raise InputError(source, "empty file")
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def read_exactly(fd: int, size: int, source: str) -> bytes:
    """``size`` bytes from the start of ``fd``: never more, whatever the file does meanwhile."""
    buffer = bytearray(size)
    view, done = memoryview(buffer), 0
    try:
        while done < size:
            n = os.preadv(fd, [view[done:]], done) if hasattr(os, "preadv") else _pread_into(fd, view[done:], done)
            if n == 0:
                raise InputError(source, f"shrank while being read ({done:,} of {size:,} bytes)")
            done += n
    except OSError as e:
        raise InputError(source, f"cannot be read ({e.strerror or e})") from None
    return bytes(buffer)


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    chunk = os.pread(fd, len(view), offset)
    view[:len(chunk)] = chunk
    return len(chunk)


def read_file(path: str | os.PathLike, *, limit: int | None = None) -> bytes:
    """The bytes of a regular file; InputError if it is missing, not a regular file, unreadable,
    empty, or (with ``limit``) larger than ``limit`` bytes."""
    source = os.fspath(path)
    fd, size = open_regular(source)
    try:
        if limit is not None and size > limit:
            raise InputError(source, f"{size:,} bytes, over the limit of {limit:,}")
        return read_exactly(fd, size, source)
    finally:
        os.close(fd)


#: A check of an image's size from its header, before anything is decoded: ``check(width, height)``
#: returns why the image is refused, or None (e.g. the tile budget of ``native`` analysis).
SizeCheck = Callable[[int, int], "str | None"]


def _check_header(source: str, width: int, height: int, max_pixels: int | None, check: SizeCheck | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise InputError(source, too_large(width, height, max_pixels))
    reason = check(width, height) if check is not None else None
    if reason is not None:
        raise InputError(source, reason)


def read_image_file(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, source: str | None = None,
                    check: SizeCheck | None = None) -> bytes:
    """The bytes of an image file, read only after what its header says has been checked.

    The header is read on its own (``FileView``): an unsupported format, an image over
    ``max_pixels``, or a file larger than any image of the header's size can be (``max_file_size``:
    a 3 GB file claiming 100 x 100 pixels) is refused before the file is read.
    """
    source = source or os.fspath(path)
    fd, size = open_regular(path)
    try:
        try:
            header = probe_header(FileView(fd, size), source)
        except OSError as e:
            raise InputError(source, f"cannot be read ({e.strerror or e})") from None
        _check_header(source, header.width, header.height, max_pixels, check)
        limit = max_file_size(header.width, header.height)
        if size > limit:
            raise InputError(
                source,
                f"{size:,} bytes, more than a {header.width}x{header.height} {header.format.upper()} can hold "
                f"(at most {limit:,}); refused without reading it",
            )
        return read_exactly(fd, size, source)
    finally:
        os.close(fd)


def too_large(width: int, height: int, max_pixels: int) -> str:
    return f"{width}x{height} is {width * height:,} pixels, over the limit of {max_pixels:,} (max_pixels)"


def decode_image(data: bytes, source: str, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 check: SizeCheck | None = None) -> np.ndarray:
    """Encoded bytes → uint8 (H, W, 3) BGR image, after the header and completeness checks."""
    import cv2

    header = probe(data, source)
    _check_header(source, header.width, header.height, max_pixels, check)
    if header.format == "tiff":
        data = tiff_alpha_unassociated_as_extra(data) or data
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    if image is None or image.size == 0:
        raise InputError(source, f"corrupt {header.format.upper()} data (the decoder rejected it)")
    if sorted(image.shape[:2]) != sorted((header.width, header.height)):  # sorted: EXIF orientation may swap them
        raise InputError(
            source,
            f"corrupt {header.format.upper()} file: its header says {header.width}x{header.height}, the decoder "
            f"read {image.shape[1]}x{image.shape[0]}",
        )
    return to_color_image(image, "BGR", source)


_EXTRA_SAMPLES = 338  # TIFF tag: what the samples beyond the colour ones are; 1 associated, 2 unassociated alpha


def tiff_alpha_unassociated_as_extra(data: bytes) -> bytes | None:
    """A TIFF whose first page has unassociated alpha, with that sample marked as plain extra data
    (ExtraSamples 2 → 0); None when there is none.

    libtiff's RGBA reading, which OpenCV uses for 8-bit TIFFs, multiplies the colours by an
    unassociated alpha (transparent pixels turn black), while the rule here is that alpha is
    dropped and the colours are taken as stored. Marked as extra data, the sample is skipped and
    the colours come out as stored. Associated (premultiplied) alpha is left as it is: its
    colours are stored multiplied.
    """
    import struct

    try:
        ifd = TiffDirectory(data)
        for tag, kind, n, field_at in ifd.entries(limit=4096):
            if tag != _EXTRA_SAMPLES or kind != 3:  # SHORT values
                continue
            at = ifd.values_at(n, 2, field_at)
            values = struct.unpack(ifd.e + "H" * n, data[at:at + 2 * n])
            if 2 not in values:
                return None
            patched = bytearray(data)
            patched[at:at + 2 * n] = struct.pack(ifd.e + "H" * n, *(0 if v == 2 else v for v in values))
            return bytes(patched)
    except (struct.error, IndexError, OverflowError, MemoryError):
        return None  # a malformed directory: the decoder reports it
    return None


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
    check: SizeCheck | None = None,
) -> tuple[np.ndarray, str, str]:
    """Any accepted input → (uint8 (H, W, 3) image, its channel order, a name for messages).

    Paths and bytes are decoded (BGR); arrays are taken in ``color_order`` and not copied when
    already uint8 with three channels. ``max_pixels`` applies to all of them; ``check`` (a
    ``SizeCheck``) to paths and bytes, from their header, before they are decoded.
    """
    if isinstance(item, np.ndarray):
        name = source or "<array>"
        image = to_color_image(item, color_order, name)
        if max_pixels is not None and image.shape[0] * image.shape[1] > max_pixels:
            raise InputError(name, too_large(image.shape[1], image.shape[0], max_pixels))
        return image, color_order, name
    if isinstance(item, (bytes, bytearray, memoryview)):
        name = source or "<bytes>"
        return decode_image(bytes(item), name, max_pixels=max_pixels, check=check), "BGR", name
    if isinstance(item, (str, os.PathLike)):
        name = source or os.fspath(item)
        if is_video_path(item):
            raise InputError(name, "is a video; use locate_video")
        data = read_image_file(item, max_pixels=max_pixels, source=name, check=check)
        return decode_image(data, name, max_pixels=max_pixels, check=check), "BGR", name
    shown = repr(item)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise InputError(
        source or "<input>",
        f"got {type(item).__name__} {shown}; expected a path, encoded image bytes or a uint8/uint16 image array",
    )
