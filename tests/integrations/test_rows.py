"""``LocateBatches``, the per-actor callable of ``locate_dataset``, called in this process (no Ray cluster).

What a batch of rows becomes: one row per image with a results.jsonl record's fields and the map
trt-locate writes; bad inputs as error rows; videos as frame rows and a verdict row; other columns
carried along.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("ray.data", reason="the ray extra is not installed (pip install 'fakelocator[ray]')")
pa = pytest.importorskip("pyarrow")

from fakelocator.errors import FakeLocatorError  # noqa: E402
from fakelocator.integrations.batch import list_inputs, filesystem, record_of  # noqa: E402
from fakelocator.integrations.ray import RESULT_FIELDS, LocateBatches, read_map  # noqa: E402
from fakelocator.runtime import Locator  # noqa: E402
from fakelocator.runtime.outputs import encode_map  # noqa: E402

from integrations.conftest import make_image, write_video  # noqa: E402


@pytest.fixture(scope="module")
def worker(red_model):
    return LocateBatches(str(red_model), locator_options=dict(backend="onnxruntime", device="cpu", threads=1, workers=1))


def png(image) -> bytes:
    import cv2

    return cv2.imencode(".png", image)[1].tobytes()


def test_rows_carry_the_record_fields_and_trt_locates_map_bytes(worker, red_model):
    images = [make_image(i) for i in range(5)]
    batch = pa.table({"bytes": [png(im) for im in images], "path": [f"up/{i}.png" for i in range(5)], "id": list(range(5))})
    out = worker(batch)
    assert out.column_names == [*RESULT_FIELDS, "id"]  # the record's fields, then the columns carried along
    rows = out.to_pylist()
    with Locator.load(str(red_model), backend="onnxruntime", device="cpu", threads=1, workers=1) as locator:
        expected = locator.locate(images)
    for i, (row, want) in enumerate(zip(rows, expected)):
        assert (row["kind"], row["path"], row["id"], row["error"]) == ("image", f"up/{i}.png", i, None)
        assert abs(row["score"] - want.score) <= 1e-6
        assert (row["label"], row["width"], row["height"], row["tiles"]) == (want.label, want.width, want.height, want.tiles)
        assert row["bbox"] == (list(want.bbox) if want.bbox is not None else None)
        assert row["map_png"] == encode_map(want.map, 8)  # the bytes trt-locate writes for maps/<key>.png
        assert np.abs(read_map(row["map_png"]) - want.map).max() <= 0.5 / 255 + 1e-6


def test_bad_inputs_are_error_rows_not_failed_batches(worker):
    batch = pa.table({
        "bytes": pa.array([b"not an image", None, png(make_image(0)), b""], pa.binary()),
        "path": ["a.jpg", "b.jpg", "c.png", "d.png"],
    })
    rows = worker(batch).to_pylist()
    assert [r["path"] for r in rows] == ["a.jpg", "b.jpg", "c.png", "d.png"]
    assert [r["error"] is None for r in rows] == [False, False, True, False]
    assert rows[1]["error"] == "bytes is null"
    for row in (rows[0], rows[1], rows[3]):
        assert row["map_png"] is None and row["score"] is None and row["label"] is None


def test_a_column_of_text_is_named_in_the_error(worker):
    rows = worker(pa.table({"bytes": ["photo.jpg"]})).to_pylist()
    assert rows[0]["error"] == "bytes holds str, not encoded image bytes"
    assert rows[0]["path"] is None  # no path column: nothing names the input but the carried columns


def test_a_missing_column_is_a_usage_error(worker):
    with pytest.raises(FakeLocatorError, match="no column 'bytes'"):
        worker(pa.table({"data": [b"x"]}))


def test_a_video_becomes_frame_rows_and_a_verdict_row(worker, tmp_path):
    video = write_video(tmp_path / "clip.avi", frames=6).read_bytes()
    batch = pa.table({"bytes": [png(make_image(1)), video, b"not a video"],
                      "path": ["a.png", "v/clip.avi", "broken.mp4"], "id": [7, 8, 9]})
    rows = worker(batch).to_pylist()
    kinds = [(r["kind"], r["path"], r["frame"], r["id"]) for r in rows]
    assert kinds == [("image", "a.png", None, 7)] + [("frame", "v/clip.avi", f, 8) for f in range(6)] + [
        ("video", "v/clip.avi", None, 8), ("video", "broken.mp4", None, 9)]
    frames = rows[1:7]
    assert all(f["map_png"] is not None and f["error"] is None for f in frames)
    assert [f["label"] for f in frames] == ["real", "fake"] * 3  # odd frames show the red square
    verdict = json.loads(rows[7]["summary"])
    assert verdict["frames"] == 6 and rows[7]["label"] == "fake" and rows[7]["map_png"] is None
    assert rows[8]["error"].startswith("not a readable video") and json.loads(rows[8]["summary"])["frames"] == 0


def test_model_bytes_travel_instead_of_a_path(red_model):
    worker = LocateBatches(red_model.read_bytes(), locator_options=dict(backend="onnxruntime", device="cpu", threads=1))
    rows = worker(pa.table({"bytes": [png(make_image(2))]})).to_pylist()
    assert rows[0]["error"] is None and rows[0]["score"] is not None


def test_records_have_trt_locates_keys_in_its_order(worker):
    row = worker(pa.table({"bytes": [png(make_image(3))], "path": ["x.png"]})).to_pylist()[0]
    record = record_of({**row, "map": "maps/x.png"})
    assert list(record) == ["kind", "path", "frame", "map", "overlay", "score", "label", "width", "height",
                            "bbox", "error", "tiles", "timings_ms"]
    assert record["map"] == "maps/x.png" and set(record["timings_ms"]) >= {"decode", "infer"}


def test_inputs_are_listed_with_trt_locates_keys(tmp_path):
    for name in ("a/b.jpg", "a/b.png", "c.png", "v.avi", ".hidden/x.png", "notes.txt", "out/maps/c.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    fs, root = filesystem(str(tmp_path))
    listed = list_inputs("in", fs, root, exclude=str(tmp_path / "out"))
    assert [(i.path, i.kind, i.key) for i, _ in listed] == [
        ("in/a/b.jpg", "image", "a/b.jpg"), ("in/a/b.png", "image", "a/b.png"),  # a clash keeps the suffixes
        ("in/c.png", "image", "c"), ("in/v.avi", "video", "v"),
    ]
    assert [source for _, source in listed][2] == str(tmp_path / "c.png")


def test_a_video_without_bytes_is_a_failed_video_record(worker):
    rows = worker(pa.table({"bytes": pa.array([None], pa.binary()), "path": ["v.mp4"]})).to_pylist()
    assert [(r["kind"], r["error"]) for r in rows] == [("video", "bytes is null")]
