"""The runtime at the edges of sizes and memory: sides over the native library's limit, the tile
budget checked from the header, batch sizes, an allocation that fails for one input, images too
small to hold a trace, sampling rates, and a closed locator.

Each rule: one bad input fails alone (an error record) and never the batch, the request or the run.
"""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError, InputError
from fakelocator.runtime import Locator
from fakelocator.runtime.native import MAX_SIDE
from fakelocator.runtime.pipeline import MIN_SIDE
from fakelocator.runtime.preprocess import load_native


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def strip(height: int, width: int) -> np.ndarray:
    """A gray strip with a red stretch in its middle third."""
    image = np.full((height, width, 3), 90, np.uint8)
    image[:, width // 3: 2 * width // 3] = (0, 0, 255)
    return image


#: The red model's tiles are 32 pixels: native analysis needs an overlap under 16.
OVERLAP = {"fit": None, "native": 8}

needs_native = pytest.mark.skipif(load_native() is None, reason="the native library is not built (cmake; docs/native.md)")


# ---- sides over the native library's limit ------------------------------------------------------------


@needs_native
@pytest.mark.parametrize("analysis", ["fit", "native"])
def test_a_side_over_the_native_limit_is_analysed_by_the_numpy_path_and_fails_nothing_else(red_model, analysis):
    long_strip = strip(16, MAX_SIDE + 7233)  # 40000 x 16: valid, but over the native library's 32767
    good = strip(40, 60)
    batch = [png(good), png(long_strip), png(good)]
    with Locator.load(red_model, device="cpu", batch_size=4, workers=2, threads=1, analysis=analysis, tile_overlap=OVERLAP[analysis],
                      max_tiles=None, preprocessor="native") as native, \
            Locator.load(red_model, device="cpu", batch_size=4, workers=2, threads=1, analysis=analysis, tile_overlap=OVERLAP[analysis],
                         max_tiles=None, preprocessor="numpy") as numpy_path:
        got = native.locate(batch, on_error="record")
        want = numpy_path.locate(batch)
    assert [r.error for r in got] == [None, None, None]
    assert got[1].map.shape == (16, MAX_SIDE + 7233)
    for a, b in zip(got, want):
        assert a.score == pytest.approx(b.score, abs=1e-5)
        np.testing.assert_allclose(a.map, b.map, atol=1e-5)
    assert got[1].map[:, 20000].mean() > 0.9 > 0.1 > got[1].map[:, 100].mean(), "the red stretch is found"


@needs_native
def test_the_cli_records_an_image_over_the_native_limit_like_any_other(tmp_path, red_model):
    from fakelocator.runtime.cli import main

    cv2.imwrite(str(tmp_path / "wide.png"), strip(16, 40000))
    cv2.imwrite(str(tmp_path / "small.png"), strip(40, 60))
    code = main([str(tmp_path / "wide.png"), str(tmp_path / "small.png"), "--out", str(tmp_path / "out"),
                 "--model", str(red_model), "--analysis", "native", "--tile-overlap", "8", "--max-tiles", "0", "--quiet"])
    assert code == 0
    maps = sorted(p.name for p in (tmp_path / "out" / "maps").rglob("*.png"))
    assert maps == ["small.png", "wide.png"]


# ---- the tile budget, from the header -------------------------------------------------------------------


def test_an_image_over_the_tile_budget_is_refused_from_its_header_without_being_decoded(tmp_path, red_model, monkeypatch):
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), strip(400, 400))  # 17 x 17 tiles of 32 with an overlap of 8
    decoded = []
    original = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a, **k: decoded.append(1) or original(*a, **k))
    with Locator.load(red_model, device="cpu", threads=1, analysis="native", tile_overlap=8, max_tiles=10) as loc:
        from_path, from_bytes, within = loc.locate([big, big.read_bytes(), png(strip(40, 40))], on_error="record")
    for result in (from_path, from_bytes):
        assert result.error is not None and "tile budget of 10" in result.error and "400x400" in result.error
    assert within.error is None
    assert len(decoded) == 1, "only the image within the budget was decoded"


# ---- batch sizes and memory ------------------------------------------------------------------------------


def test_a_batch_beyond_reason_is_a_clear_error_before_anything_is_allocated(red_model, monkeypatch, capsys, tmp_path):
    from fakelocator.runtime import limits
    from fakelocator.runtime.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FakeLocatorError, match="batch_size must be between 1 and 4096, got 100000"):
        Locator.load(red_model, device="cpu", batch_size=100000)
    assert main(["x.png", "--out", "o", "--model", str(red_model), "--batch", "100000"]) == 2
    err = capsys.readouterr().err
    assert "batch_size must be between 1 and 4096" in err and "Traceback" not in err
    monkeypatch.setattr(limits, "physical_memory", lambda: 64 * 2**20)  # a 64 MiB machine
    with pytest.raises(FakeLocatorError, match=r"batch_size 2000 of 32x32 inputs needs 0\.0 GiB.*quarter of this machine's 0\.1 GiB"):
        Locator.load(red_model, device="cpu", batch_size=2000)


def test_running_out_of_memory_for_a_whole_batch_ends_the_run_with_one_line_and_its_records(tmp_path, red_model,
                                                                                          monkeypatch, capsys):
    from fakelocator.runtime.cli import main

    for i in range(8):
        cv2.imwrite(str(tmp_path / f"{i}.png"), strip(40, 40 + i))
    calls = []

    def infer_then_run_out(self, batch, original=__import__("fakelocator.runtime.backends.onnxruntime",
                                                             fromlist=["x"]).OnnxRuntimeBackend.infer):
        calls.append(1)
        if len(calls) > 5:
            raise MemoryError
        return original(self, batch)

    from fakelocator.runtime.backends.onnxruntime import OnnxRuntimeBackend

    monkeypatch.setattr(OnnxRuntimeBackend, "infer", infer_then_run_out)
    code = main([str(tmp_path), "--out", str(tmp_path / "out"), "--model", str(red_model), "--batch", "1",
                 "--workers", "1", "--threads", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "out of memory" in err and "--batch" in err and "Traceback" not in err
    recorded = {json.loads(line)["map"] for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()}
    written = {p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out" / "maps").rglob("*.png")}
    assert recorded == written and len(recorded) >= 1, "the images analysed before are recorded"


@pytest.mark.parametrize("analysis", ["fit", "native"])
def test_an_allocation_that_fails_for_one_input_is_that_inputs_error_record(red_model, monkeypatch, analysis):
    from fakelocator.runtime.preprocess import NumpyPreprocessor

    def out_of_memory_for_77_rows(original):
        def call(self, *args, **kwargs):
            sizes = [a for a in args if isinstance(a, int)] + [getattr(a, "height", None) for a in args]
            if 77 in sizes:
                raise MemoryError
            return original(self, *args, **kwargs)
        return call

    monkeypatch.setattr(NumpyPreprocessor, "upsample", out_of_memory_for_77_rows(NumpyPreprocessor.upsample))
    monkeypatch.setattr(NumpyPreprocessor, "stitch", out_of_memory_for_77_rows(NumpyPreprocessor.stitch))
    images = [strip(40, 60), strip(77, 90), strip(50, 50)]
    with Locator.load(red_model, device="cpu", threads=1, preprocessor="numpy", analysis=analysis,
                      tile_overlap=OVERLAP[analysis]) as loc:
        results = loc.locate(images, on_error="record")
    assert results[0].error is None and results[2].error is None
    assert results[1].error.startswith("out of memory analysing it (90x77 pixels")
    assert results[1].map is None and results[1].score is None


# ---- too small to hold a trace ----------------------------------------------------------------------------


def test_an_image_under_the_minimum_size_is_neither_real_nor_fake_but_says_why(red_model):
    red = np.zeros((12, 12, 3), np.uint8)
    red[:, :] = (0, 0, 255)  # the red model would call it fake
    locator = Locator.load(red_model, device="cpu", threads=1)
    assert locator.min_side == MIN_SIDE == 16
    small, thin, enough = locator.locate([red, strip(MIN_SIDE - 1, 400), strip(MIN_SIDE, MIN_SIDE)], on_error="record")
    assert small.label is None and small.score is None and small.map is None
    assert small.error == (f"too small to analyse: 12x12 pixels, under the minimum of {MIN_SIDE} pixels a side; "
                           "an image this small holds no trace to read, so it is neither real nor fake")
    assert thin.error is not None and f"400x{MIN_SIDE - 1} pixels" in thin.error
    assert enough.error is None and enough.map.shape == (MIN_SIDE, MIN_SIDE)
    with pytest.raises(InputError, match="too small to analyse"):
        locator.locate(red)
    with Locator.load(red_model, device="cpu", threads=1, min_side=1) as everything:
        assert everything.locate(red).label == "fake", "min_side=1 analyses any size"
    locator.close()


# ---- sampling rates and a closed locator ------------------------------------------------------------------


@pytest.mark.parametrize("fps", ["inf", "1e400", "nan", "-1", "1e7"])
def test_an_fps_that_is_not_a_usable_rate_is_a_usage_error(fps, red_model, capsys, tmp_path, monkeypatch):
    from fakelocator.runtime.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        main(["clip.mp4", "--out", "o", "--fps", fps])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "--fps" in err and "Traceback" not in err


@pytest.mark.parametrize("fps", [1e308, math.inf, math.nan, 0.0])
def test_locate_video_refuses_an_fps_it_cannot_sample_by(locator, video, fps):
    with pytest.raises(FakeLocatorError, match=r"fps must be a number in \(0, 1e\+06\]"):
        locator.locate_video(video, fps=fps)


def test_a_closed_locator_says_it_is_closed(red_model, video):
    loc = Locator.load(red_model, device="cpu", threads=1)
    loc.close()
    loc.close()  # twice is fine
    for call in (lambda: loc.locate(strip(40, 40)), lambda: loc.locate_iter([strip(40, 40)]),
                 lambda: loc.locate_video(video)):
        with pytest.raises(FakeLocatorError, match=r"this Locator is closed"):
            call()


def test_onnxruntimes_own_allocation_failure_is_a_memory_error_and_other_failures_are_not(red_model):
    """ONNX Runtime reports a failed allocation as its own exception type; the backend names it a
    MemoryError, which the run turns into one line (above), not a traceback."""
    from fakelocator.runtime.backends.onnxruntime import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(red_model)
    h, w = backend.info.preprocessing.size
    batch = np.zeros((2, 3, h, w), np.float32)

    class Session:
        def __init__(self, message):
            self.message = message

        def run(self, outputs, feed):
            raise RuntimeError(self.message)

    backend.session = Session("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for requested buffer of size 2147483648")
    with pytest.raises(MemoryError, match="batch of 2"):
        backend.infer(batch)
    backend.session = Session("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions")
    with pytest.raises(RuntimeError, match="invalid dimensions"):
        backend.infer(batch)
