"""Header probing: every supported format's size comes from its header, and truncation is caught."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from fakelocator.errors import InputError
from fakelocator.runtime.headers import probe, sniff

ENCODED = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp", "gif": ".gif", "tiff": ".tiff", "pnm": ".ppm"}


def encode(ext: str, height: int = 37, width: int = 53, channels: int = 3) -> bytes:
    image = np.random.default_rng(1).integers(0, 256, (height, width, channels), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, image if channels > 1 else image[:, :, 0])
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("fmt", sorted(ENCODED))
def test_size_comes_from_the_header(fmt):
    data = encode(ENCODED[fmt])
    header = probe(data, "x")
    assert (header.format, header.width, header.height) == (fmt, 53, 37)


@pytest.mark.parametrize("fmt", sorted(ENCODED))
def test_truncated_files_are_refused_as_truncated(fmt):
    data = encode(ENCODED[fmt])
    for keep in (0.6, 0.95):
        with pytest.raises(InputError, match="truncated"):
            probe(data[: int(len(data) * keep)], "x")


@pytest.mark.parametrize("fmt", ["jpeg", "png", "bmp", "pnm"])
def test_the_size_alone_reads_from_a_file_cut_after_its_header(fmt):
    data = encode(ENCODED[fmt])
    header = probe(data[: int(len(data) * 0.6)], "x", complete=False)
    assert (header.width, header.height) == (53, 37)


def test_jpeg_eoi_check_ignores_an_exif_thumbnail():
    """A JPEG whose APP1 segment carries a complete thumbnail (its own SOS and EOI) is still cut."""
    thumb = encode(".jpg", 8, 8)
    main = encode(".jpg")
    app1 = b"Exif\x00\x00" + thumb
    with_thumb = main[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + main[2:]
    assert probe(with_thumb, "x").width == 53
    with pytest.raises(InputError, match="truncated JPEG"):
        probe(with_thumb[: len(with_thumb) - 200], "x")


def test_trailing_bytes_after_a_complete_file_are_accepted():
    assert probe(encode(".jpg") + b"\x00" * 16, "x").height == 37
    assert probe(encode(".png") + b"garbage", "x").height == 37


def test_a_huge_size_is_read_without_any_pixel_data():
    """The header alone gives the size: this PNG declares 100000 x 80000 and has no image data."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 80_000, 8, 2, 0, 0, 0)
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + b"\0\0\0\0"  # noqa: E731
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
    header = probe(data, "x")
    assert header.pixels == 8_000_000_000


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"hello, world", "not an image in a supported format"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x00" * 40, "corrupt JPEG header"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDX" + b"\x00" * 20, "corrupt PNG header"),
        (b"GIF89a\x00\x00\x00\x00" + b"\x00" * 4 + b";", "corrupt GIF header (size 0x0)"),
    ],
)
def test_bad_data_names_the_reason(data, reason):
    with pytest.raises(InputError, match=reason.replace("(", r"\(").replace(")", r"\)")) as info:
        probe(data, "some/file.jpg")
    assert info.value.source == "some/file.jpg"


def test_sniff_knows_the_magic_numbers():
    assert sniff(b"P5\n2 2\n255\n") == "pnm"
    assert sniff(b"BM") == "bmp"
    assert sniff(b"II*\x00") == "tiff"
    assert sniff(b"<html>") is None
