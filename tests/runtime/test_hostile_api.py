"""Hostile and unusual inputs through the Python API: what is not an image input, videos from bytes
and streams, presentation timestamps, truncated and corrupt videos."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from fakelocator.errors import InputError
from fakelocator.runtime import Locator
from fakelocator.runtime.video import has_pyav

needs_pyav = pytest.mark.skipif(not has_pyav(), reason="PyAV (the runtime extra's video decoder) is not installed")


# ---- what is not an image input --------------------------------------------------------------------


@pytest.mark.parametrize("value, named", [
    (None, "NoneType None"), (3, "int 3"), (np.array(5), "0-D int64 array"), (np.zeros(10, np.uint8), "1-D uint8 array of shape (10,)"),
    ({"a": 1}, "dict"), (2.5, "float 2.5"),
])
def test_non_inputs_are_input_errors_naming_what_was_passed_and_what_is_accepted(locator, value, named):
    with pytest.raises(InputError) as e:
        locator.locate(value)
    message = str(e.value)
    assert named in message and "expected a path, encoded image bytes" in message, message
    assert not isinstance(e.value, TypeError)
    recorded = locator.locate(value, on_error="record")
    assert not isinstance(recorded, list), "one bad argument is one error result, not one per element"
    assert named in recorded.error and recorded.score is None


def test_a_1d_array_is_not_iterated_as_inputs(locator):
    with pytest.raises(InputError, match=r"1-D uint8 array of shape \(10,\)"):
        locator.locate(np.arange(10, dtype=np.uint8))
    with pytest.raises(InputError):
        list(locator.locate_iter(None))


def test_bad_items_in_a_list_are_error_results_naming_them(locator):
    results = locator.locate([None, np.zeros((8, 8, 3), np.uint8), 7, np.zeros(4, np.uint8)], on_error="record")
    assert [r.ok for r in results] == [False, True, False, False]
    assert "NoneType None" in results[0].error and "int 7" in results[2].error and "(4,)" in results[3].error


def test_a_bare_path_given_to_locate_iter_is_one_input(locator, tmp_path):
    results = list(locator.locate_iter(str(tmp_path / "missing.png"), on_error="record"))
    assert len(results) == 1 and "no such file" in results[0].error


# ---- videos from bytes and streams, with presentation times ------------------------------------------


@needs_pyav
def test_locate_video_reads_bytes_and_file_objects_like_the_path(locator, video):
    by_path = [(f.frame, round(f.score, 5)) for f in locator.locate_video(video, every=4)]
    data = video.read_bytes()
    by_bytes = [(f.frame, round(f.score, 5)) for f in locator.locate_video(data, every=4)]
    with open(video, "rb") as stream:
        clip = locator.locate_video(stream, every=4)
        by_stream = [(f.frame, round(f.score, 5)) for f in clip]
    assert by_path == by_bytes == by_stream and len(by_path) == 5
    assert clip.path == str(video), "a file object is named by its name"
    assert locator.locate_video(io.BytesIO(data)).path == "<stream>"
    assert locator.locate_video(memoryview(data)).summary.frames == 20


@needs_pyav
def test_junk_bytes_and_non_inputs_are_input_errors(locator):
    with pytest.raises(InputError, match="not a readable video"):
        locator.locate_video(b"not a video at all" * 20)
    with pytest.raises(InputError, match="expected a path, bytes or a binary file object, got int"):
        locator.locate_video(3)


def write_vfr(path, times_ms, size=(64, 48)):
    """A variable-frame-rate MPEG-4 video: frame i is shown at times_ms[i]; odd frames are red."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=1000)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = __import__("fractions").Fraction(1, 1000)
        for i, t in enumerate(times_ms):
            image = np.zeros((size[1], size[0], 3), np.uint8)
            if i % 2:
                image[8:30, 8:30] = (0, 0, 255)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = t
            frame.time_base = stream.codec_context.time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@needs_pyav
def test_frame_times_are_the_containers_presentation_times(locator, tmp_path):
    times = [0, 40, 80, 500, 540, 1500, 1510, 2200]  # bursts and gaps: index / fps would be wrong
    path = write_vfr(tmp_path / "vfr.mkv", times)
    frames = list(locator.locate_video(path))
    assert [f.frame for f in frames] == list(range(8))
    assert [f.time_s for f in frames] == pytest.approx([t / 1000 for t in times], abs=1e-3)
    # fps sampling follows the presentation times: the first frame at or after each whole second
    sampled = [f.frame for f in locator.locate_video(path, fps=1)]
    assert sampled == [0, 5, 7]
    record = frames[3].to_record()
    assert record["time_s"] == pytest.approx(0.5, abs=1e-3) and json.loads(json.dumps(record))["time_s"] is not None


# ---- truncated and corrupt videos ----------------------------------------------------------------------


def test_a_truncated_video_is_an_error_not_a_short_success(locator, video, tmp_path):
    data = video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    clip = locator.locate_video(cut)
    list(clip)
    s = clip.summary
    assert s.error is not None and ("declared frames" in s.error or "could not be decoded" in s.error), s
    assert s.frames + s.failed_frames < 20
    with pytest.raises(InputError):
        list(locator.locate_video(cut, on_error="raise"))


@needs_pyav
def test_a_corrupt_frame_is_a_failed_frame_and_reading_goes_on(locator, tmp_path):
    path = write_vfr(tmp_path / "ok.mp4", [i * 100 for i in range(20)])
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 300] = bytes(300)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    clip = locator.locate_video(bad)
    frames = list(clip)
    s = clip.summary
    failed = [f for f in frames if f.error is not None]
    assert failed and all("could not be decoded" in f.error for f in failed)
    assert s.failed_frames == len(failed) and s.frames >= 10, "frames after the corrupt one are still analysed"
    assert s.frames + s.failed_frames == 20


def test_without_pyav_opencv_reads_paths_and_still_reports_truncation(video, tmp_path, monkeypatch):
    from fakelocator.errors import FakeLocatorError
    from fakelocator.runtime import video as video_module
    from fakelocator.runtime.video import Sampling, VideoReader

    data = video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    reader = VideoReader(cut, Sampling(), max_pixels=None, decoder="opencv")
    frames = list(reader.frames())
    assert len(frames) < 20 and "declared frames" in reader.error
    whole = VideoReader(video, Sampling(), max_pixels=None, decoder="opencv")
    assert len(list(whole.frames())) == 20 and whole.error is None
    monkeypatch.setattr(video_module, "has_pyav", lambda: False)
    with pytest.raises(FakeLocatorError, match="needs PyAV"):
        VideoReader(data, Sampling(), max_pixels=None)
