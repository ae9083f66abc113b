"""What trt-locate leaves behind and says when nothing works: no --out for a model that does not
load, no "maps in …" when no map was written, and the numpy fallback said once."""

from __future__ import annotations

import numpy as np
import pytest

from fakelocator.runtime.cli import main


def test_a_model_that_does_not_load_leaves_no_output_folder(tmp_path, capsys):
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "bad.onnx").write_bytes(b"not an onnx file")
    code = main([str(tmp_path / "a.png"), "--model", str(tmp_path / "bad.onnx"), "--out", str(tmp_path / "out")])
    assert code == 2 and not (tmp_path / "out").exists()


def test_a_run_where_every_input_failed_says_no_maps_were_written(tmp_path, red_model, capsys):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    code = main([str(tmp_path / "broken.png"), "--model", str(red_model), "--out", str(tmp_path / "out"), "--quiet",
                 "--workers", "1", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "no maps written; records in" in err and "maps in" not in err


def test_the_numpy_fallback_is_said_in_the_summary(tmp_path, red_model, red_square, capsys, monkeypatch):
    import cv2

    from fakelocator.runtime import native

    monkeypatch.setattr(native, "_loaded", None)
    monkeypatch.setattr(native, "_unavailable", "no libfakelocator_native.so found")
    cv2.imwrite(str(tmp_path / "a.png"), red_square(32, 32, (4, 4, 20, 20)))
    code = main([str(tmp_path / "a.png"), "--model", str(red_model), "--out", str(tmp_path / "out"), "--quiet",
                 "--workers", "1", "--threads", "1", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0 and "maps in" in err
    assert err.count("the native library was not found (no libfakelocator_native.so found") == 1
