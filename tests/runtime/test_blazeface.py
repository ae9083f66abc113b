"""BlazeFace converted to ONNX (fakelocator/weights/faces): MediaPipe's own boxes on photos that
installed packages ship, nothing in face-free photos and textures, the decoding pieces (anchors,
weighted suppression, tiles), batches, and a runtime that imports no mediapipe, jax or TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.blazeface import (
    MODELS, BlazeFaceDetector, View, cut_by_inner_edges, default_weights_dir, iou_matrix, tile_views, weighted_nms,
)
from fakelocator.runtime.faces import FaceOptions

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "faces" / "blazeface_reference.json"


def photo(name: str) -> np.ndarray:
    """The photo as uint8 RGB."""
    if name == "astronaut":
        from skimage import data

        return data.astronaut()
    import matplotlib

    return np.ascontiguousarray(cv2.imread(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))[:, :, ::-1])


@pytest.fixture(scope="module")
def detectors():
    """Each model as MediaPipe runs it (one view of the whole image), plain or anti-aliased; and
    the default detector (full range, anti-aliased, tiles for faces of 0.1 × the shorter side)."""
    found = {(m, aa): BlazeFaceDetector(m, device="cpu", threads=1, antialias=aa, tiles=False) for m in MODELS for aa in (False, True)}
    found["default"] = BlazeFaceDetector(device="cpu", threads=1)
    return found


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


# ----------------------------------------------------------------------- MediaPipe's own boxes


@pytest.mark.parametrize("model", ["short", "full"])
@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_the_converted_models_give_mediapipes_boxes(detectors, reference, model, name):
    """The boxes MediaPipe 0.10.14 itself returned (scripts/mediapipe/references.py, stored):
    with MediaPipe's plain bilinear resampling nearly the same boxes and scores; with our
    anti-aliased shrinking (the default) IoU >= 0.9, and with tiles too."""
    want = reference["photos"][name][model]
    assert len(want) == 1
    ref_box, ref_score = np.array([want[0]["box"]]), want[0]["score"]
    image = photo(name)
    for antialias, min_iou in ((False, 0.97), (True, 0.9)):
        boxes, points, scores = detectors[model, antialias].detect_arrays([image], "RGB")[0]
        assert len(boxes) == 1, (antialias, boxes)
        assert iou_matrix(boxes, ref_box)[0, 0] >= min_iou, antialias
        assert scores[0] == pytest.approx(ref_score, abs=0.02)
    if model == "full":
        (face,) = detectors["default"].detect(image, "RGB")
        assert iou_matrix(np.array([face.box]), ref_box)[0, 0] >= 0.9
    # Key points: both eyes in the upper half of the box, the mouth below the nose tip.
    (x0, y0, x1, y1), (r_eye, l_eye, nose, mouth) = boxes[0], points[0][:4]
    assert y0 < r_eye[1] < (y0 + y1) / 2 and y0 < l_eye[1] < (y0 + y1) / 2 and r_eye[0] < l_eye[0]
    assert nose[1] < mouth[1] < y1


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_live_mediapipe_agrees_when_it_is_installed(detectors, name):
    mp = pytest.importorskip(
        "mediapipe", reason="mediapipe is not installed here (it pins protobuf<5; the project keeps it in a side "
        "virtualenv, scripts/mediapipe/); its boxes are stored in tests/data/faces/blazeface_reference.json")
    image = photo(name)
    for selection, model in ((0, "short"), (1, "full")):
        with mp.solutions.face_detection.FaceDetection(model_selection=selection, min_detection_confidence=0.5) as fd:
            (d,) = fd.process(image).detections
        b = d.location_data.relative_bounding_box
        h, w = image.shape[:2]
        ref = np.array([[b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h]])
        boxes, _, _ = detectors[model, False].detect_arrays([image], "RGB")[0]
        assert iou_matrix(boxes, ref).max() >= 0.9


def test_nothing_is_found_in_textures_and_face_free_photos(detectors):
    from skimage import data

    full = detectors["default"]
    for name in ("brick", "grass", "gravel", "coffee", "hubble_deep_field", "moon", "coins", "clock", "immunohistochemistry"):
        image = getattr(data, name)()
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else np.ascontiguousarray(image[:, :, :3])
        assert full.detect(image, "RGB") == [], name
        assert full.detect(cv2.resize(image, (1920, 1080)), "RGB") == [], f"{name} as a 1080p frame (tiled)"


def test_colour_order_and_gray_images(detectors):
    full = detectors["default"]
    rgb = photo("astronaut")
    a = full.detect(rgb, "RGB")
    b = full.detect(np.ascontiguousarray(rgb[:, :, ::-1]), "BGR")
    assert len(a) == 1 and [f.box for f in a] == [f.box for f in b]
    assert len(full.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), "RGB")) == 1, "a gray face is a face"
    with pytest.raises(FakeLocatorError, match="uint8"):
        full.detect(rgb.astype(np.float32), "RGB")


def test_a_batch_of_frames_gives_each_frames_faces(detectors):
    full = detectors["default"]
    frames = [photo("astronaut"), cv2.resize(photo("grace_hopper"), (300, 352)), np.full((200, 300, 3), 127, np.uint8)]
    batch = full.detect_batch(frames, "RGB")
    alone = [full.detect(f, "RGB") for f in frames]
    assert [len(f) for f in batch] == [1, 1, 0]
    for got, want in zip(batch, alone):
        np.testing.assert_allclose([f.box for f in got], [f.box for f in want], atol=0.05)


def test_a_small_face_in_a_1080p_frame_is_found_in_a_tile(detectors):
    from skimage import data

    frame = cv2.resize(data.coffee(), (1920, 1080))
    face = cv2.resize(photo("astronaut"), None, fx=0.9, fy=0.9, interpolation=cv2.INTER_AREA)  # face ≈ 86 px: 0.08 of 1080
    frame[500:500 + face.shape[0], 700:700 + face.shape[1]] = face
    truth = np.array([[174, 66, 270, 162]]) * 0.9 + [700, 500, 700, 500]
    full = BlazeFaceDetector("full", device="cpu", threads=1, min_size=0.07)
    assert len(full.views(1920, 1080)) > 1, "tiles: the whole frame alone makes an 86-px face 9 px at 192"
    (found,) = full.detect_batch([frame], "RGB")
    assert len(found) == 1 and iou_matrix(np.array([found[0].box]), truth)[0, 0] > 0.6


# ----------------------------------------------------------------------------- decoding pieces


def test_anchors_follow_mediapipes_ssd_layout():
    short, full = MODELS["short"].anchors(), MODELS["full"].anchors()
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # short range: a 16×16 grid with 2 anchors per cell, then an 8×8 grid with 6 per cell
    np.testing.assert_allclose(short[:2], [[0.5 / 16, 0.5 / 16]] * 2)
    np.testing.assert_allclose(short[512:518], [[0.5 / 8, 0.5 / 8]] * 6)
    np.testing.assert_allclose(short[-1], [7.5 / 8, 7.5 / 8])
    np.testing.assert_allclose(full[[0, 1, 48]], [[0.5 / 48, 0.5 / 48], [1.5 / 48, 0.5 / 48], [0.5 / 48, 1.5 / 48]])


def test_weighted_suppression_averages_a_cluster_by_score_and_keeps_the_best_score():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    points = np.zeros((3, 6, 2), np.float32)
    points[:, :, 0] = boxes[:, :1]
    scores = np.array([0.6, 0.9, 0.7], np.float32)
    b, p, s = weighted_nms(boxes, points, scores, 0.3)
    np.testing.assert_allclose(s, [0.9, 0.7])
    np.testing.assert_allclose(b[0], (0.6 * boxes[0] + 0.9 * boxes[1]) / 1.5, rtol=1e-6)
    np.testing.assert_allclose(p[0, :, 0], (0.6 * 0 + 0.9 * 1) / 1.5, rtol=1e-6)
    np.testing.assert_allclose(b[1], boxes[2])
    assert [len(x) for x in weighted_nms(boxes[:0], points[:0], scores[:0], 0.3)] == [0, 0, 0]


def test_tiles_cover_the_frame_with_overlap_only_when_faces_would_be_too_small():
    assert tile_views(512, 512, min_face=51, min_fraction=0.06) == [View(0, 0, 512)]
    views = tile_views(1920, 1080, min_face=108, min_fraction=0.06)
    whole, tiles = views[0], views[1:]
    assert whole == View(0, -420, 1920), "the whole frame, centred in its square as MediaPipe letterboxes"
    assert all(t.side == 1080 and t.y0 == 0 for t in tiles)
    starts = [t.x0 for t in tiles]
    assert starts[0] == 0 and starts[-1] + 1080 == 1920 and min(np.diff(starts)) > 0
    assert max(np.diff(starts)) <= 0.75 * 1080, "neighbours overlap by at least a quarter"
    tile = tiles[1]
    boxes = np.array([[tile.x0 + 2, 100, tile.x0 + 60, 160], [tile.x0 + 100, 100, tile.x0 + 160, 160],
                      [tile.x0 + 900, 1000, tile.x0 + 1000, 1080]], np.float32)
    assert cut_by_inner_edges(boxes, tile, 1920, 1080).tolist() == [True, False, False], \
        "cut at the tile's inner left edge; the image's bottom border cuts nothing"


def test_options_are_checked_and_blazeface_is_the_default():
    with pytest.raises(FakeLocatorError, match="blazeface model"):
        BlazeFaceDetector("long")
    with pytest.raises(FakeLocatorError, match="no such file"):
        BlazeFaceDetector("full", weights_dir="/nonexistent")
    detector = FaceOptions().build_detector()
    assert detector.name == "blazeface" and detector.model == "full"
    assert FaceOptions(detector="blazeface-short", threshold=0.7).build_detector().threshold == 0.7


# ----------------------------------------------------------------------------- packaging


def test_the_models_ship_with_their_licence_and_run_any_batch_size():
    import onnxruntime as ort

    folder = default_weights_dir()
    assert "Apache License" in (folder / "LICENSE").read_text()
    sources = json.loads((folder / "SOURCES.json").read_text())
    total = 0
    for spec in MODELS.values():
        path = folder / spec.file
        assert spec.file in sources and "mediapipe==0.10.14" in sources[spec.file]["from"]
        total += path.stat().st_size
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (inp,) = session.get_inputs()
        assert inp.name == "input" and inp.shape[1:] == [3, spec.side, spec.side] and isinstance(inp.shape[0], str)
        boxes, scores = session.run(None, {"input": np.zeros((2, 3, spec.side, spec.side), np.float32)})
        assert boxes.shape == (2, len(spec.anchors()), 16) and scores.shape == (2, len(spec.anchors()), 1)
    assert total < 3e6, "the runtime install grows by a few MB at most"
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"weights/*/*"' in pyproject, "package data ships weights/faces/*"


def test_the_runtime_finds_faces_importing_no_mediapipe_jax_tensorflow_torch_or_scikit_image(tmp_path):
    heavy = ("mediapipe", "jax", "jaxlib", "tensorflow", "tflite", "torch", "skimage", "facexlib")
    code = f"""
import importlib.abc, sys
import numpy as np, cv2
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {heavy!r}:
            raise ImportError(name + " is blocked")
sys.meta_path.insert(0, Block())
from fakelocator.runtime.faces import FaceOptions
image = cv2.imread({str(Path(__file__).resolve().parents[2] / "samples" / "real-000000.png")!r})
detector = FaceOptions(device="cpu").build_detector()
detector.detect(np.ascontiguousarray(image), "BGR")
print(detector.name, sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r})))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["blazeface", "[]"]


def test_trt_locate_chooses_the_detector(tmp_path, capsys):
    import argparse

    from fakelocator.runtime.cli import face_options, main

    args = argparse.Namespace(faces=True, device="cpu", face_detector="lbp", face_weights=None, face_margin=None,
                              face_min_size=0.2, face_threshold=None, faces_fallback=None)
    assert face_options(args) == FaceOptions(detector="lbp", device="cpu", min_size=0.2)
    assert main(["x.png", "--out", str(tmp_path / "o"), "--face-detector", "blazeface-short"]) == 2
    assert "--face-detector only apply with --faces" in capsys.readouterr().err
