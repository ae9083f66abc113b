"""`--precision auto|fp32|int8`: which of a model's ONNX files runs, only when asked."""

from __future__ import annotations

import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.precision import choose, companions, cpu_int8_flags

VNNI = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"
AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"


@pytest.fixture
def files(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"fp32")
    (tmp_path / "model.int8.onnx").write_bytes(b"int8")
    return tmp_path


def test_companions_share_the_stem(tmp_path):
    assert companions(tmp_path / "m.onnx") == (tmp_path / "m.onnx", tmp_path / "m.int8.onnx")
    assert companions(tmp_path / "m.int8.onnx") == (tmp_path / "m.onnx", tmp_path / "m.int8.onnx")
    with pytest.raises(FakeLocatorError, match="between ONNX files"):
        companions(tmp_path / "m.engine")


def test_without_precision_the_file_given_runs(files):
    assert choose(files / "model.int8.onnx", None, on_cpu=True).path == files / "model.int8.onnx"
    assert choose(files / "model.onnx", None, on_cpu=True, cpuinfo=VNNI).precision == "fp32"


def test_fp32_and_int8_pick_their_file(files):
    assert choose(files / "model.int8.onnx", "fp32", on_cpu=True).path == files / "model.onnx"
    assert choose(files / "model.onnx", "int8", on_cpu=False).path == files / "model.int8.onnx"
    (files / "model.int8.onnx").unlink()
    with pytest.raises(FakeLocatorError, match="export onnx .*--int8"):
        choose(files / "model.onnx", "int8", on_cpu=True)


def test_auto_takes_int8_only_on_a_cpu_with_8_bit_dot_products(files):
    assert choose(files / "model.onnx", "auto", on_cpu=True, cpuinfo=VNNI).precision == "int8"
    assert choose(files / "model.onnx", "auto", on_cpu=True, cpuinfo=AVX2).precision == "fp32"
    assert choose(files / "model.onnx", "auto", on_cpu=False, cpuinfo=VNNI).precision == "fp32"
    (files / "model.int8.onnx").unlink()
    assert choose(files / "model.onnx", "auto", on_cpu=True, cpuinfo=VNNI).precision == "fp32"


def test_cpu_flags():
    assert cpu_int8_flags(VNNI) == ("avx512_vnni",)
    assert cpu_int8_flags(AVX2) == ()
    assert cpu_int8_flags("flags : amx_int8 avx_vnni") == ("avx_vnni", "amx_int8")


def test_locator_load_and_trt_locate_take_precision(tmp_path, capsys):
    from helpers.models import build_red_model

    from fakelocator.runtime import Locator
    from fakelocator.runtime.cli import main

    build_red_model(tmp_path / "model.onnx")
    build_red_model(tmp_path / "model.int8.onnx", precision="int8")  # the metadata says int8; enough to tell them apart
    with Locator.load(str(tmp_path / "model.onnx"), device="cpu", precision="int8") as locator:
        assert locator.info.precision == "int8"
    with Locator.load(str(tmp_path / "model.int8.onnx"), device="cpu", precision="fp32") as locator:
        assert locator.info.precision == "fp32"
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((40, 40, 3), np.uint8))
    code = main([str(tmp_path / "a.png"), "--model", str(tmp_path / "model.onnx"), "--precision", "int8",
                 "--device", "cpu", "--out", str(tmp_path / "run")])
    assert code == 0
    assert "model.int8.onnx (int8)" in capsys.readouterr().err
