"""Files that are not what they claim: FIFOs and devices, sparse giants with small headers, TIFFs whose
size tags disagree. Each is refused quickly, without reading more than its header."""

from __future__ import annotations

import os
import struct
import threading
import time

import cv2
import numpy as np
import pytest

from fakelocator.errors import InputError
from fakelocator.runtime.decode import MAX_BYTES_PER_PIXEL, METADATA_ALLOWANCE, load_image, read_file
from fakelocator.runtime.headers import probe


def finishes_within(seconds, fn, *args, **kwargs):
    """fn's result (or raised exception) if it returns within ``seconds``; fails the test otherwise."""
    outcome = {}

    def call():
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001
            outcome["error"] = e

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{fn.__name__} hung for more than {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_a_fifo_named_like_an_image_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="is a FIFO.*only regular files are read"):
        finishes_within(5, load_image, fifo)
    with pytest.raises(InputError, match="FIFO"):
        finishes_within(5, read_file, fifo)


def test_a_device_is_refused_without_reading_it():
    with pytest.raises(InputError, match="character device"):
        finishes_within(5, load_image, "/dev/zero")


def test_a_symlink_to_a_device_is_refused(tmp_path):
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    with pytest.raises(InputError, match="character device"):
        load_image(tmp_path / "zero.png")


def test_a_sparse_giant_with_a_small_header_is_refused_from_its_size(tmp_path):
    png = cv2.imencode(".png", np.zeros((100, 100, 3), np.uint8))[1].tobytes()
    path = tmp_path / "big.png"
    path.write_bytes(png)
    os.truncate(path, 3 * 2**30)  # sparse: 3 GB on paper, a few KB on disk
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=r"3,221,225,472 bytes, more than a 100x100 PNG can hold.*without reading"):
        load_image(path)
    assert time.perf_counter() - t0 < 2.0
    # the limit is generous for real files: metadata allowance plus 16 bytes a pixel
    ok = tmp_path / "ok.png"
    ok.write_bytes(png + b"\0" * 4096)  # trailing bytes after IEND are tolerated
    assert load_image(ok)[0].shape == (100, 100, 3)
    assert METADATA_ALLOWANCE + MAX_BYTES_PER_PIXEL * 100 * 100 < 3 * 2**30


def test_an_unknown_format_is_refused_after_its_first_bytes_whatever_its_size(tmp_path):
    path = tmp_path / "zeros.jpg"
    path.write_bytes(b"\0" * 16)
    os.truncate(path, 2 * 2**30)
    with pytest.raises(InputError, match="not an image in a supported format"):
        finishes_within(5, load_image, path)


def tiff_with_sizes(sizes, strip_for):
    """An uncompressed 8-bit gray little-endian TIFF whose IFD gives ImageWidth/ImageLength once per
    entry of ``sizes`` (in that order) and holds the pixels of ``strip_for`` = (w, h)."""
    sw, sh = strip_for
    pixels = bytes(sw * sh)
    entries = []
    for w, h in sizes:
        entries += [(256, 4, 1, w), (257, 4, 1, h)]
    entries += [(258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (273, 4, 1, 0), (277, 3, 1, 1),
                (278, 4, 1, sh), (279, 4, 1, len(pixels))]
    data_at = 8 + 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, kind, n, value in entries:
        value = data_at if tag == 273 else value
        out += struct.pack("<HHIHH", tag, kind, n, value, 0) if kind == 3 else struct.pack("<HHII", tag, kind, n, value)
    return bytes(out + struct.pack("<I", 0) + pixels)


def test_a_tiff_with_conflicting_size_tags_is_refused_before_decoding(tmp_path):
    # libtiff decodes the first ImageWidth; a header check keeping the last saw 10 x 10
    data = tiff_with_sizes([(12000, 12000), (10, 10)], (10, 10))
    with pytest.raises(InputError, match=r"corrupt TIFF header \(ImageWidth given 2 times, with values \[10, 12000\]\)"):
        probe(data, "x.tif")
    path = tmp_path / "dup.tif"
    path.write_bytes(data)
    with pytest.raises(InputError, match="corrupt TIFF header"):
        load_image(path, max_pixels=1_000_000)
    with pytest.raises(InputError, match="corrupt TIFF header"):
        load_image(data, max_pixels=None)


def test_repeated_but_equal_size_tags_are_fine():
    data = tiff_with_sizes([(16, 12), (16, 12)], (16, 12))
    assert (probe(data, "x").width, probe(data, "x").height) == (16, 12)
