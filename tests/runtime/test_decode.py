"""Decoding: every accepted kind of image becomes uint8 (H, W, 3); every bad one an InputError with its reason."""

from __future__ import annotations

import io
import os

import cv2
import numpy as np
import pytest

from fakelocator.errors import InputError
from fakelocator.runtime.decode import decode_image, load_image, read_file, to_color_image


def png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def test_gray_becomes_three_equal_channels():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = decode_image(png(gray), "g.png")
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8
    assert (out == gray[:, :, None]).all()


def test_alpha_is_dropped_not_composited():
    bgra = np.zeros((4, 5, 4), np.uint8)
    bgra[..., :3] = (10, 20, 30)
    bgra[..., 3] = 0  # fully transparent: compositing would change the colours
    out = decode_image(png(bgra), "a.png")
    assert out.shape == (4, 5, 3)
    assert (out == (10, 20, 30)).all()


def test_16_bit_is_scaled_by_257_with_rounding():
    values = np.array([[0, 128, 257, 65535, 32896, 200]], np.uint16)
    out = decode_image(png(values), "deep.png")
    assert out.dtype == np.uint8
    assert out[0, :, 0].tolist() == [0, 0, 1, 255, 128, 1]


def test_palette_images_are_expanded():
    pil = pytest.importorskip("PIL.Image")
    rgb = np.zeros((6, 7, 3), np.uint8)
    rgb[:3] = (255, 0, 0)
    image = pil.fromarray(rgb).convert("P", palette=pil.Palette.ADAPTIVE, colors=4)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    out = decode_image(buf.getvalue(), "p.png")
    assert out.shape == (6, 7, 3)
    assert (out[:3] == (0, 0, 255)).all() and (out[3:] == 0).all()  # BGR


@pytest.mark.parametrize("shape", [(1, 1), (1, 4000), (3000, 2), (17, 31)])
def test_tiny_and_extreme_shapes_decode(shape):
    image = np.full(shape + (3,), 77, np.uint8)
    out = decode_image(png(image), "x.png")
    assert out.shape == shape + (3,)


def test_max_pixels_is_enforced_from_the_header():
    big = png(np.zeros((300, 400, 3), np.uint8))
    assert decode_image(big, "ok.png", max_pixels=120_000).shape == (300, 400, 3)
    with pytest.raises(InputError, match=r"400x300 is 120,000 pixels, over the limit of 119,999 \(max_pixels\)"):
        decode_image(big, "big.png", max_pixels=119_999)


def test_files_missing_folders_empty_and_unreadable(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_file(tmp_path / "missing.jpg")
    with pytest.raises(InputError, match="is a folder"):
        read_file(tmp_path)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        read_file(tmp_path / "empty.jpg")
    locked = tmp_path / "locked.jpg"
    locked.write_bytes(b"x")
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads anything
        pytest.skip("running as root: permissions are not enforced")
    with pytest.raises(InputError, match="permission denied"):
        read_file(locked)


def test_corrupt_data_behind_a_valid_header():
    data = bytearray(png(np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)))
    data[60:120] = b"\x00" * 60  # inside IDAT: the header and IEND are intact, the pixels are not
    with pytest.raises(InputError, match="corrupt PNG data"):
        decode_image(bytes(data), "c.png")


def test_arrays_keep_their_colour_order_and_are_not_copied():
    rgb = np.zeros((5, 6, 3), np.uint8)
    image, order, _ = load_image(rgb, color_order="RGB")
    assert order == "RGB" and image is rgb
    rgba = np.zeros((5, 6, 4), np.uint8)
    assert load_image(rgba, color_order="RGB")[0].shape == (5, 6, 3)


@pytest.mark.parametrize(
    "array, reason",
    [
        (np.zeros((4, 4, 3), np.float32), "expected uint8 or uint16 pixels"),
        (np.zeros((4, 4, 2), np.uint8), "expected an (H, W), (H, W, 3) or (H, W, 4) image"),
        (np.zeros((0, 4, 3), np.uint8), "empty image"),
    ],
)
def test_bad_arrays(array, reason):
    with pytest.raises(InputError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        to_color_image(array, "BGR", "<array 0>")


def test_a_video_path_is_not_an_image(tmp_path):
    with pytest.raises(InputError, match="is a video; use locate_video"):
        load_image(str(tmp_path / "clip.mp4"))


def test_exif_orientation_is_applied():
    pil = pytest.importorskip("PIL.Image")
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :10] = 255  # a white band on the left
    image = pil.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif.tobytes())
    out = decode_image(buf.getvalue(), "rotated.jpg")
    assert out.shape == (40, 20, 3)
    assert out[:10].mean() > 200 and out[-10:].mean() < 50  # the band is now on top
