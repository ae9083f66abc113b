"""Read an encoded image's format and size from its header, and check that the file is complete.

Both run before any pixel is decoded: an image over the pixel limit is refused from its header
(decoding a 30 000 × 30 000 PNG to find out would take gigabytes), and a truncated file is refused
outright rather than handed to a decoder that might grey-fill the missing part (older OpenCV
builds do that for JPEG) or print library noise on stderr.

Formats: JPEG, PNG, WebP, BMP, GIF, TIFF (classic and BigTIFF) and binary/ASCII PNM. Anything
else is refused as an unsupported format: without a header parser its size cannot be checked
before decoding.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Callable

from fakelocator.errors import InputError

FORMATS = ("jpeg", "png", "webp", "bmp", "gif", "tiff", "pnm")

# JPEG start-of-frame markers (all but DHT C4, JPG C8 and DAC CC), which carry the frame size.
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True)
class Header:
    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def sniff(data: bytes) -> str | None:
    """The image format from its magic bytes, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM":
        return "bmp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if len(data) >= 3 and data[0:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace():
        return "pnm"
    return None


def probe(data: bytes, source: str, *, complete: bool = True) -> Header:
    """Format and size from the header; raises InputError for unknown, corrupt or truncated files.

    ``complete=False`` reads the size only and leaves a file cut off after its header to the
    decoder (checking a dataset's pairs, whose pixels are decoded later).
    """
    header, is_complete = _parse(data, source)
    if complete and not is_complete():
        raise InputError(source, f"truncated {header.format.upper()} file ({_MISSING[header.format]})")
    return header


def probe_header(data: "bytes | FileView", source: str) -> Header:
    """Format and size from the header alone, without the completeness check: what ``probe`` finds
    before it looks at the rest of the file. ``data`` may be a ``FileView`` (reads on demand), so the
    size of a file can be checked against its header before the file is read."""
    return _parse(data, source)[0]


def _parse(data, source: str) -> tuple[Header, Callable[[], bool]]:
    if not len(data):
        raise InputError(source, "empty file")
    fmt = sniff(data[:16])
    if fmt is None:
        raise InputError(
            source, "not an image in a supported format (" + ", ".join(f.upper() for f in FORMATS) + ")"
        )
    try:
        width, height, complete = _PARSERS[fmt](data)
    except (struct.error, IndexError):  # ran past the end of the data
        raise InputError(source, f"truncated {fmt.upper()} file (header cut off)") from None
    except _Corrupt as e:
        raise InputError(source, f"corrupt {fmt.upper()} header ({e})") from None
    except (ValueError, KeyError):
        raise InputError(source, f"corrupt {fmt.upper()} header") from None
    if width <= 0 or height <= 0:
        raise InputError(source, f"corrupt {fmt.upper()} header (size {width}x{height})")

    def checked() -> bool:
        try:
            return complete()
        except (struct.error, IndexError):
            return False

    return Header(fmt, width, height), checked


class _Corrupt(ValueError):
    """A header that is well-formed but inconsistent; its message says how."""


class FileView:
    """Read-only, random-access bytes of an open regular file, read on demand (``os.pread``).

    Supports ``len``, integer indexing and slicing, which is all the header parsers use, so a
    header can be read from a file of any size without reading the file. The first ``cache`` bytes
    are read once and kept.
    """

    def __init__(self, fd: int, size: int, cache: int = 1 << 16):
        self.fd, self.size = fd, size
        self._head = os.pread(fd, min(size, cache), 0)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(self.size)
            if step != 1:
                raise ValueError("FileView slices have step 1")
            if stop <= start:
                return b""
            if stop <= len(self._head):
                return self._head[start:stop]
            return os.pread(self.fd, stop - start, start)
        index = key + self.size if key < 0 else key
        if not 0 <= index < self.size:
            raise IndexError("FileView index out of range")
        return self[index:index + 1][0]


_MISSING = {
    "jpeg": "no end-of-image marker after the last scan",
    "png": "no IEND chunk",
    "webp": "shorter than its RIFF size",
    "bmp": "shorter than its pixel data",
    "gif": "no trailer byte",
    "tiff": "image data past the end of the file",
    "pnm": "shorter than its pixel data",
}


def _jpeg(data) -> tuple[int, int, Callable[[], bool]]:
    pos, size = 2, None
    while pos < len(data):
        if data[pos] != 0xFF:
            raise ValueError("marker expected")
        while data[pos] == 0xFF:  # fill bytes
            pos += 1
        marker = data[pos]
        pos += 1
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before it
            break
        (length,) = struct.unpack(">H", data[pos:pos + 2])
        if marker in _SOF_MARKERS:
            height, width = struct.unpack(">HH", data[pos + 3:pos + 7])
            size = (width, height)
            break
        pos += length
    if size is None:
        raise ValueError("no frame header")
    # Entropy-coded data stuffs every 0xFF with 0x00, so EOI and SOS markers cannot occur inside a
    # scan; an EXIF thumbnail's own EOI comes before the main image's scans.
    return size[0], size[1], lambda: data.rfind(b"\xff\xd9") > data.rfind(b"\xff\xda")


def _png(data) -> tuple[int, int, Callable[[], bool]]:
    if data[12:16] != b"IHDR":
        raise ValueError("IHDR must come first")
    width, height = struct.unpack(">II", data[16:24])

    def complete() -> bool:
        pos = 8
        while pos + 8 <= len(data):
            (length,) = struct.unpack(">I", data[pos:pos + 4])
            kind = data[pos + 4:pos + 8]
            pos += 12 + length  # length, type, data, CRC
            if kind == b"IEND":
                return pos <= len(data)
        return False

    return width, height, complete


def _webp(data) -> tuple[int, int, Callable[[], bool]]:
    (riff_size,) = struct.unpack("<I", data[4:8])
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise ValueError("bad VP8 start code")
        w, h = struct.unpack("<HH", data[26:30])
        width, height = w & 0x3FFF, h & 0x3FFF
    elif chunk == b"VP8L":
        if data[20] != 0x2F:
            raise ValueError("bad VP8L signature")
        (bits,) = struct.unpack("<I", data[21:25])
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
    else:
        raise ValueError("unknown WebP chunk")
    return width, height, lambda: len(data) >= riff_size + 8


def _bmp(data) -> tuple[int, int, Callable[[], bool]]:
    (file_size,) = struct.unpack("<I", data[2:6])
    (offset, dib) = struct.unpack("<II", data[10:18])
    if dib == 12:  # BITMAPCOREHEADER
        width, height, _, bpp = struct.unpack("<HHHH", data[18:26])
        compression = 0
    else:
        width, height, _, bpp, compression = struct.unpack("<iiHHI", data[18:34])
    height = abs(height)  # negative: rows stored top-down
    if compression in (0, 3, 6):  # uncompressed rows (BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS)
        needed = offset + ((width * bpp + 31) // 32) * 4 * height
    else:
        needed = file_size
    return width, height, lambda: len(data) >= needed


def _gif(data) -> tuple[int, int, Callable[[], bool]]:
    width, height = struct.unpack("<HH", data[6:10])
    return width, height, lambda: bytes(data).rstrip(b"\x00").endswith(b"\x3b")


_TIFF_TYPES = {3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}  # SHORT, LONG, LONG8


class TiffDirectory:
    """The first image file directory (IFD) of a TIFF or BigTIFF: byte order, entries, value offsets.

    Raises ``struct.error`` / ``IndexError`` on a directory cut short, as its readers expect."""

    def __init__(self, data):
        self.data = data
        self.e = "<" if data[:2] == b"II" else ">"
        self.big = data[2:4] in (b"+\x00", b"\x00+")
        self.word = "Q" if self.big else "I"  # a count or an offset
        if self.big:
            (ifd,) = struct.unpack(self.e + "Q", data[8:16])
            (self.count,) = struct.unpack(self.e + "Q", data[ifd:ifd + 8])
            self.entry_size, self.first, self.inline = 20, ifd + 8, 8
        else:
            (ifd,) = struct.unpack(self.e + "I", data[4:8])
            (self.count,) = struct.unpack(self.e + "H", data[ifd:ifd + 2])
            self.entry_size, self.first, self.inline = 12, ifd + 2, 4

    def entries(self, limit: int | None = None):
        """(tag, type, number of values, offset of the entry's value field) of each entry, in order."""
        e, data = self.e, self.data
        for i in range(self.count if limit is None else min(self.count, limit)):
            p = self.first + i * self.entry_size
            tag, kind = struct.unpack(e + "HH", data[p:p + 4])
            (n,) = struct.unpack(e + self.word, data[p + 4:p + 4 + self.inline])
            yield tag, kind, n, p + 4 + self.inline

    def values_at(self, n: int, size: int, field_at: int) -> int:
        """Where an entry's ``n`` values of ``size`` bytes are: in its value field when they fit, else
        at the offset that field holds."""
        if n * size <= self.inline:
            return field_at
        (at,) = struct.unpack(self.e + self.word, self.data[field_at:field_at + self.inline])
        return at


def _tiff(data) -> tuple[int, int, Callable[[], bool]]:
    ifd = TiffDirectory(data)
    e = ifd.e
    if ifd.first + ifd.count * ifd.entry_size > len(data):
        raise IndexError("IFD past the end")
    # Every occurrence of each tag is kept: a file that names its width twice is refused when the
    # values differ (libtiff decodes the first, a parser keeping the last would check the wrong size).
    tags: dict[int, list[list[int] | tuple[int, int, str, int]]] = {}
    for tag, kind, n, field_at in ifd.entries():
        if kind not in _TIFF_TYPES or tag not in (256, 257, 273, 279, 324, 325):
            continue
        code, size = _TIFF_TYPES[kind]
        value_at = ifd.values_at(n, size, field_at)
        if tag in (256, 257):
            if n < 1:
                raise _Corrupt(f"{_TIFF_NAMES[tag]} has no value")
            tags.setdefault(tag, []).append(list(struct.unpack(e + code, data[value_at:value_at + size])))
        else:  # strip/tile tables: read only by the completeness check, after the size checks
            tags.setdefault(tag, []).append((value_at, n, code, size))
    for tag in (256, 257):
        values = {v[0] for v in tags.get(tag, ())}
        if not values:
            raise KeyError(tag)
        if len(values) > 1:
            raise _Corrupt(f"{_TIFF_NAMES[tag]} given {len(tags[tag])} times, with values {sorted(values)}")
    width, height = tags[256][0][0], tags[257][0][0]

    def table(tag: int) -> list[int]:
        if tag not in tags:
            return []
        value_at, n, code, size = tags[tag][0]
        if value_at + n * size > len(data):
            return []  # the value array itself is cut off
        return list(struct.unpack(e + code * n, data[value_at:value_at + n * size]))

    def complete() -> bool:
        for offsets, counts in ((273, 279), (324, 325)):
            if offsets in tags or counts in tags:
                offs, lens = table(offsets), table(counts)
                if not offs or len(offs) != len(lens) or max(o + n for o, n in zip(offs, lens)) > len(data):
                    return False
        return True

    return width, height, complete


_TIFF_NAMES = {256: "ImageWidth", 257: "ImageLength"}


def _pnm(data) -> tuple[int, int, Callable[[], bool]]:
    kind = data[1:2]
    fields: list[int] = []
    pos = 2
    wanted = 2 if kind in b"14" else 3  # bitmaps have no maxval
    while len(fields) < wanted:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            end = bytes(data[pos:pos + 4096]).find(b"\n")  # a header comment line
            if end < 0:
                raise ValueError("comment line without an end")
            pos += end + 1
            continue
        end = pos
        while data[end:end + 1].isdigit():
            end += 1
        if end == pos:
            raise ValueError("number expected")
        fields.append(int(data[pos:end]))
        pos = end
    width, height = fields[0], fields[1]
    if kind in b"123":  # ASCII: the decoder checks the count
        return width, height, lambda: True
    pos += 1  # the single whitespace byte before the raster
    if kind == b"4":
        needed = ((width + 7) // 8) * height
    else:
        channels = 1 if kind == b"5" else 3
        needed = width * height * channels * (2 if fields[2] > 255 else 1)
    return width, height, lambda: len(data) - pos >= needed


_PARSERS = {"jpeg": _jpeg, "png": _png, "webp": _webp, "bmp": _bmp, "gif": _gif, "tiff": _tiff, "pnm": _pnm}
