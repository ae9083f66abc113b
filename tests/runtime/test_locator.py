"""The Python API: Locator.load, locate, locate_iter and locate_video, on the tiny red-detecting ONNX model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError, InputError
from fakelocator.runtime import FrameResult, LocateResult, Locator
from fakelocator.runtime.backends import select_backend


def png_bytes(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


# ---- loading ---------------------------------------------------------------------------------


def test_model_metadata_is_read(locator, contract):
    info = locator.info
    assert info.format == "onnx"
    assert info.preprocessing == contract
    assert info.provenance == {"made_by": "tests/helpers/models.py"}
    assert (info.version, info.precision) == ("test", "fp32")
    assert (locator.backend.name, locator.backend.device) == ("onnxruntime", "cpu")


def test_auto_picks_onnxruntime_for_onnx_on_a_cpu_box(red_model):
    assert select_backend(red_model, "auto", "cpu") == "onnxruntime"


def test_an_engine_without_tensorrt_says_so(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0")
    with pytest.raises(FakeLocatorError, match="tensorrt"):
        Locator.load(engine, device="cpu")


def test_backend_and_format_must_agree(red_model):
    with pytest.raises(FakeLocatorError, match="the torch backend does not load onnx files"):
        select_backend(red_model, "torch")
    with pytest.raises(FakeLocatorError, match="unknown model file type"):
        select_backend("model.bin")


def test_missing_default_model_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr("fakelocator.runtime.locator.default_model_path", lambda: tmp_path / "model.onnx")
    with pytest.raises(FakeLocatorError, match="the default model is not installed"):
        Locator.load()


def test_an_onnx_without_fakelocator_metadata_is_refused(tmp_path, build_red_model):
    import onnx

    path = build_red_model(tmp_path / "bare.onnx")
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))
    with pytest.raises(FakeLocatorError, match="not exported by fakelocator"):
        Locator.load(path, device="cpu")


def test_cuda_request_without_a_cuda_provider_fails_loudly(red_model):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(FakeLocatorError, match="no CUDA provider") as e:
        Locator.load(red_model, backend="onnxruntime", device="cuda")
    # the two wheels share one package: installing the gpu extra over the CPU one does not help
    assert "first pip uninstall onnxruntime" in str(e.value) and "fakelocator[gpu]" in str(e.value)


# ---- images ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(101, 77), (33, 500), (7, 5), (1, 1), (480, 3)])
def test_map_has_the_image_size(locator, size):
    result = locator.locate(np.zeros(size + (3,), np.uint8))
    assert isinstance(result, LocateResult)
    assert result.map.shape == size and result.map.dtype == np.float32
    assert (result.width, result.height) == (size[1], size[0])


def test_map_score_label_and_bbox_find_the_red_square(locator, red_square):
    box = (60, 40, 140, 100)
    result = locator.locate(red_square(160, 200, box))
    assert result.label == "fake" and result.score > 0.9
    x0, y0, x1, y1 = result.bbox
    margin = 200 // 32 + 2  # one network pixel plus the bilinear ramp
    assert abs(x0 - 60) <= margin and abs(y0 - 40) <= margin and abs(x1 - 140) <= margin and abs(y1 - 100) <= margin
    assert result.map[70, 100] > 0.9 and result.map[5, 5] < 0.01
    assert set(result.timings) == {"decode", "preprocess", "infer", "upsample"}


def test_nothing_found_means_real_and_no_bbox(locator):
    result = locator.locate(np.full((50, 60, 3), 128, np.uint8))
    assert result.label == "real" and result.bbox is None


def test_colour_order_is_explicit(locator, red_square):
    bgr = red_square(64, 64, (0, 0, 64, 64))
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    assert locator.locate(rgb, color_order="RGB").label == "fake"
    assert locator.locate(rgb, color_order="BGR").label == "real"  # read as BGR, it is blue


def test_every_kind_of_input_gives_the_same_map(locator, tmp_path, red_square):
    image = red_square(45, 70, (10, 5, 40, 30))
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), image)
    bgra = np.dstack([image, np.zeros(image.shape[:2], np.uint8)])
    deep = image.astype(np.uint16) * 257
    results = locator.locate([image, str(path), path, png_bytes(image), bgra, deep])
    assert [r.source for r in results] == ["<array 0>", str(path), str(path), "<bytes 3>", "<array 4>", "<array 5>"]
    for r in results[1:]:
        assert np.array_equal(r.map, results[0].map)


def test_gray_arrays_work(locator):
    assert locator.locate(np.zeros((10, 12), np.uint8)).map.shape == (10, 12)


def test_results_do_not_depend_on_batching(red_model, rng):
    images = [rng.integers(0, 256, (20 + i, 30 + 2 * i, 3), dtype=np.uint8) for i in range(7)]
    maps = []
    for batch_size in (1, 3, 8):
        with Locator.load(red_model, device="cpu", batch_size=batch_size, workers=2) as loc:
            maps.append([r.map for r in loc.locate(images)])
    for other in maps[1:]:
        for a, b in zip(maps[0], other):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_a_static_batch_model_gets_padded_batches(tmp_path, rng, red_square, build_red_model):
    path = build_red_model(tmp_path / "static.onnx", batch=4)
    images = [red_square(30, 30, (0, 0, 15, 15))] + [rng.integers(0, 100, (25, 25, 3), dtype=np.uint8) for _ in range(4)]
    with Locator.load(path, device="cpu", batch_size=8) as loc:
        assert loc.backend.fixed_batch == 4
        results = loc.locate(images)  # batches of 4 and 1 (padded to 4)
    assert [r.label for r in results] == ["fake", "real", "real", "real", "real"]


def test_bad_inputs_raise_by_default_and_are_recorded_on_request(locator, tmp_path, red_square):
    good = red_square(20, 20, (0, 0, 10, 10))
    bad = [str(tmp_path / "missing.jpg"), b"not an image", np.zeros((3, 3), np.float64)]
    with pytest.raises(InputError, match="missing.jpg: no such file"):
        locator.locate([good, bad[0]])
    results = locator.locate([good, *bad, good], on_error="record")
    assert [r.ok for r in results] == [True, False, False, False, True]
    assert results[1].error == "no such file"
    assert "not an image" in results[2].error
    assert "uint8 or uint16" in results[3].error
    assert results[1].map is None and results[1].score is None


def test_locate_iter_streams_a_generator_lazily(red_model):
    pulled = []

    def images():
        for i in range(1000):
            pulled.append(i)
            yield np.zeros((8, 8, 3), np.uint8)

    with Locator.load(red_model, device="cpu", batch_size=2, workers=2, prefetch=4, min_side=1) as loc:
        stream = loc.locate_iter(images())
        first = next(stream)
        assert first.source == "<array 0>"
        assert len(pulled) < 20
        stream.close()


def test_keep_images_attaches_the_decoded_image(locator, red_square):
    image = red_square(10, 10, (0, 0, 5, 5))
    result = locator.locate(png_bytes(image), keep_images=True)
    assert np.array_equal(result.image, image) and result.color_order == "BGR"


def test_threshold_sets_the_label(red_model):
    image = np.full((16, 16, 3), (0, 0, 140), np.uint8)  # half-red: a middling score
    with Locator.load(red_model, device="cpu") as loc:
        score = loc.locate(image).score
    assert 0.05 < score < 0.95
    with Locator.load(red_model, device="cpu", threshold=score) as loc:
        assert loc.locate(image).label == "fake"
    with Locator.load(red_model, device="cpu", threshold=min(1.0, score + 1e-3)) as loc:
        assert loc.locate(image).label == "real"


# ---- regions (the face-crop hook) ------------------------------------------------------------


def test_region_provider_crops_and_pastes_back(red_model, red_square):
    image = red_square(100, 100, (0, 0, 100, 100))
    calls = []

    def provider(img, color_order, index):
        calls.append((img.shape, color_order, index))
        return [(10, 20, 50, 60), (-5, 90, 20, 130)]  # the second is clipped to (0, 90, 20, 100)

    with Locator.load(red_model, device="cpu", regions=provider) as loc:
        result = loc.locate(image)
    assert calls == [((100, 100, 3), "BGR", 0)]
    assert [r.box for r in result.regions] == [(10, 20, 50, 60), (0, 90, 20, 100)]
    assert result.map[40, 30] > 0.9 and result.map[5, 5] == 0.0 and result.map[95, 10] > 0.9
    assert result.score == max(r.score for r in result.regions)
    assert "regions" in result.timings


def test_no_regions_means_nothing_to_analyse(red_model, red_square):
    with Locator.load(red_model, device="cpu", regions=lambda *a: []) as loc:
        result = loc.locate(red_square(20, 20, (0, 0, 20, 20)))
    assert (result.score, result.label, result.bbox, result.regions) == (0.0, "real", None, [])
    assert not result.map.any()


def test_a_failing_region_provider_fails_that_input_only(red_model):
    def provider(img, order, index):
        if index == 1:
            raise RuntimeError("detector crashed")
        return None

    with Locator.load(red_model, device="cpu", regions=provider, min_side=1) as loc:
        results = loc.locate([np.zeros((8, 8, 3), np.uint8)] * 3, on_error="record")
    assert [r.ok for r in results] == [True, False, True]
    assert "detector crashed" in results[1].error


# ---- videos ----------------------------------------------------------------------------------


def test_video_frames_stream_then_summarize(locator, video):
    clip = locator.locate_video(video, every=3)
    frames = list(clip)
    assert all(isinstance(f, FrameResult) for f in frames)
    assert [f.frame for f in frames] == [0, 3, 6, 9, 12, 15, 18]
    assert [f.label for f in frames] == ["real", "fake"] * 3 + ["real"]
    assert frames[1].time_s == pytest.approx(0.3)
    assert frames[0].map.shape == (48, 64)
    s = clip.summary
    assert (s.frames, s.failed_frames, s.frames_read) == (7, 0, 20)
    assert s.max_score == max(f.score for f in frames)
    assert s.mean_score == pytest.approx(np.mean([f.score for f in frames]))
    assert s.top_frames[0]["frame"] in (3, 9, 15) and len(s.top_frames) == 5
    assert s.top_frames == s.to_record()["summary"]["top_frames"], "the same shape in the API and the JSONL"
    assert s.top_frames[0] == {"frame": s.top_frames[0]["frame"], "score": s.max_score}
    assert s.label == "fake" and s.verdict_by == "p95"
    assert s.fps == pytest.approx(10.0)


def test_summary_reads_the_rest_when_not_iterated(locator, video):
    clip = locator.locate_video(video, fps=5, max_frames=4)
    assert next(iter(clip)).frame == 0
    s = clip.summary
    assert s.frames == 4  # frames 0, 2, 4, 6
    assert s.top_frames == [] or all(t["frame"] in (0, 2, 4, 6) for t in s.top_frames)


def test_verdict_statistics(locator, video):
    by_mean = locator.locate_video(video, verdict_by="mean").summary
    assert by_mean.label == "fake" if by_mean.mean_score >= 0.5 else by_mean.label == "real"
    assert by_mean.frames == 20


def test_known_frames_are_skipped_but_summarized(locator, video):
    clip = locator.locate_video(video, every=5, known={0: 0.25, 5: None})
    assert [f.frame for f in clip] == [10, 15]
    s = clip.summary
    assert s.frames == 3 and s.failed_frames == 1


def test_broken_videos_are_input_errors(locator, tmp_path, video):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 10)
    with pytest.raises(InputError, match="not a readable video"):
        locator.locate_video(junk)
    with pytest.raises(InputError, match="no such file"):
        locator.locate_video(tmp_path / "missing.mp4")
    with pytest.raises(FakeLocatorError, match="either every or fps"):
        locator.locate_video(video, every=2, fps=3)


def test_video_frames_over_max_pixels_are_refused(red_model, video):
    with Locator.load(red_model, device="cpu", max_pixels=64 * 48 - 1) as loc:
        with pytest.raises(InputError, match="over the limit"):
            loc.locate_video(video)


def test_closing_a_video_early_stops_its_reader(locator, video):
    import threading

    with locator.locate_video(video) as clip:
        first = next(iter(clip))
    assert first.frame == 0
    assert not [t for t in threading.enumerate() if t.name == "fakelocator-reader"]
    assert clip.summary.frames >= 1  # what was read before closing
