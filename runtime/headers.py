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

import struct
from dataclasses import dataclass

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
    if not data:
        raise InputError(source, "empty file")
    fmt = sniff(data)
    if fmt is None:
        raise InputError(
            source, "not an image in a supported format (" + ", ".join(f.upper() for f in FORMATS) + ")"
        )
    try:
        width, height, whole = _PARSERS[fmt](data)
    except (struct.error, IndexError):  # ran past the end of the data
        raise InputError(source, f"truncated {fmt.upper()} file (header cut off)") from None
    except (ValueError, KeyError):
        raise InputError(source, f"corrupt {fmt.upper()} header") from None
    if width <= 0 or height <= 0:
        raise InputError(source, f"corrupt {fmt.upper()} header (size {width}x{height})")
    if complete and not whole:
        raise InputError(source, f"truncated {fmt.upper()} file ({_MISSING[fmt]})")
    return Header(fmt, width, height)


_MISSING = {
    "jpeg": "no end-of-image marker after the last scan",
    "png": "no IEND chunk",
    "webp": "shorter than its RIFF size",
    "bmp": "shorter than its pixel data",
    "gif": "no trailer byte",
    "tiff": "image data past the end of the file",
    "pnm": "shorter than its pixel data",
}


def _jpeg(data: bytes) -> tuple[int, int, bool]:
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
    complete = data.rfind(b"\xff\xd9") > data.rfind(b"\xff\xda")
    return size[0], size[1], complete


def _png(data: bytes) -> tuple[int, int, bool]:
    if data[12:16] != b"IHDR":
        raise ValueError("IHDR must come first")
    width, height = struct.unpack(">II", data[16:24])
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        pos += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            return width, height, pos <= len(data)
    return width, height, False


def _webp(data: bytes) -> tuple[int, int, bool]:
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
    return width, height, len(data) >= riff_size + 8


def _bmp(data: bytes) -> tuple[int, int, bool]:
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
    return width, height, len(data) >= needed


def _gif(data: bytes) -> tuple[int, int, bool]:
    width, height = struct.unpack("<HH", data[6:10])
    return width, height, data.rstrip(b"\x00").endswith(b"\x3b")


_TIFF_TYPES = {3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}  # SHORT, LONG, LONG8


def _tiff(data: bytes) -> tuple[int, int, bool]:
    e = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    if big:
        (ifd,) = struct.unpack(e + "Q", data[8:16])
        (count,) = struct.unpack(e + "Q", data[ifd:ifd + 8])
        entry_size, first, inline = 20, ifd + 8, 8
    else:
        (ifd,) = struct.unpack(e + "I", data[4:8])
        (count,) = struct.unpack(e + "H", data[ifd:ifd + 2])
        entry_size, first, inline = 12, ifd + 2, 4
    if first + count * entry_size > len(data):
        raise IndexError("IFD past the end")
    tags: dict[int, list[int]] = {}
    for i in range(count):
        p = first + i * entry_size
        tag, kind = struct.unpack(e + "HH", data[p:p + 4])
        if kind not in _TIFF_TYPES or tag not in (256, 257, 273, 279, 324, 325):
            continue
        code, size = _TIFF_TYPES[kind]
        if big:
            (n,) = struct.unpack(e + "Q", data[p + 4:p + 12])
            value_at = p + 12
        else:
            (n,) = struct.unpack(e + "I", data[p + 4:p + 8])
            value_at = p + 8
        if n * size > inline:
            (value_at,) = struct.unpack(e + ("Q" if big else "I"), data[value_at:value_at + inline])
        if value_at + n * size > len(data):
            tags[tag] = []  # the value array itself is cut off
            continue
        tags[tag] = list(struct.unpack(e + code * n, data[value_at:value_at + n * size]))
    width, height = tags[256][0], tags[257][0]
    complete = True
    for offsets, counts in ((273, 279), (324, 325)):
        if offsets in tags or counts in tags:
            offs, lens = tags.get(offsets, []), tags.get(counts, [])
            if not offs or len(offs) != len(lens) or max(o + n for o, n in zip(offs, lens)) > len(data):
                complete = False
    return width, height, complete


def _pnm(data: bytes) -> tuple[int, int, bool]:
    kind = data[1:2]
    fields: list[int] = []
    pos = 2
    wanted = 2 if kind in b"14" else 3  # bitmaps have no maxval
    while len(fields) < wanted:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
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
        return width, height, True
    pos += 1  # the single whitespace byte before the raster
    if kind == b"4":
        needed = ((width + 7) // 8) * height
    else:
        channels = 1 if kind == b"5" else 3
        needed = width * height * channels * (2 if fields[2] > 255 else 1)
    return width, height, len(data) - pos >= needed


_PARSERS = {"jpeg": _jpeg, "png": _png, "webp": _webp, "bmp": _bmp, "gif": _gif, "tiff": _tiff, "pnm": _pnm}
