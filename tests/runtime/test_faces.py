"""Face crops in the runtime: the built-in detector on real photos, crop geometry, exact paste-back,
frames without faces, locate_video(faces=...) and trt-locate --faces on a generated video."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime import Locator
from fakelocator.runtime.cli import main
from fakelocator.runtime.face_detectors import LBPCascadeDetector, group_windows, suppress_nested
from fakelocator.runtime.faces import FaceOptions, FaceRegions, crop_box
from fakelocator.runtime.results import Face

# ------------------------------------------------------------------------------- real photos


def astronaut_rgb() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def grace_hopper_bgr() -> np.ndarray:
    import matplotlib

    return cv2.imread(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))


# Face boxes (x0, y0, x1, y1) read off the photos: eyebrows to chin, ear to ear.
ASTRONAUT_FACE = (174, 66, 270, 162)
GRACE_HOPPER_FACE = (166, 123, 367, 324)


def iou(a, b) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def lbp():
    return LBPCascadeDetector()


@pytest.mark.parametrize("photo, order, face", [
    (astronaut_rgb, "RGB", ASTRONAUT_FACE), (grace_hopper_bgr, "BGR", GRACE_HOPPER_FACE),
])
def test_the_built_in_detector_finds_the_face_in_photos_that_packages_ship(lbp, photo, order, face):
    image = photo()
    faces = lbp.detect(image, order)
    assert len(faces) == 1, faces
    assert iou(faces[0].box, face) > 0.6 and 0.5 <= faces[0].score < 1
    swapped = lbp.detect(np.ascontiguousarray(image[:, :, ::-1]), "BGR" if order == "RGB" else "RGB")
    assert [f.box for f in swapped] == [f.box for f in faces], "the colour order is honoured"


def test_a_small_face_in_a_1080p_frame_is_found_on_a_downscaled_copy(lbp):
    from skimage import data

    frame = cv2.resize(data.coffee(), (1920, 1080))  # RGB, no face
    assert lbp.detect(frame, "RGB") == [], "no face in a photo of a coffee cup"
    face = cv2.resize(astronaut_rgb(), None, fx=1.4, fy=1.4)  # the face: 134 px, 0.12 of the frame's height
    frame[300:300 + face.shape[0], 1000:1000 + face.shape[1]] = face
    start = time.perf_counter()
    found = lbp.detect(frame, "RGB")
    seconds = time.perf_counter() - start
    truth = tuple(np.add(np.multiply(ASTRONAUT_FACE, 1.4), (1000, 300, 1000, 300)))
    assert len(found) == 1 and iou(found[0].box, truth) > 0.5
    assert seconds < 3, f"{seconds:.2f} s: the search must not run at full resolution"


def test_raw_hits_are_clustered_and_nested_clusters_suppressed():
    face_a = [(10 + d, 10 + d, 50 + d, 50 + d) for d in range(5)]  # five hits on one face
    face_b = [(200, 10, 240, 50), (201, 11, 241, 51)]  # two on another
    boxes, hits = group_windows(np.array(face_a + face_b, float))
    assert sorted(hits.tolist()) == [2, 5]
    keep = suppress_nested(np.array([[0, 0, 100, 100], [20, 20, 60, 60], [300, 0, 340, 40]], float), np.array([0.6, 0.8, 0.5]))
    assert keep == [1, 2], "the big box around the better one is the same face"


# ------------------------------------------------------------------------------ crop geometry


def test_crops_are_square_with_the_margin_and_stay_inside_the_image():
    assert crop_box((100, 100, 200, 200), 1000, 1000, 0.3) == (70, 70, 230, 230)
    assert crop_box((100, 80, 160, 200), 1000, 1000, 0.0) == (70, 80, 190, 200), "square around a tall box"
    assert crop_box((0, 0, 100, 100), 1000, 1000, 0.3) == (0, 0, 160, 160), "shifted, not shrunk, at the edge"
    assert crop_box((900, 950, 1000, 1000), 1000, 1000, 0.3) == (840, 840, 1000, 1000)
    assert crop_box((10, 10, 90, 90), 100, 60, 0.5) == (0, 0, 100, 60), "clipped only when larger than the image"


class KnownFaces:
    """A detector that 'finds' given boxes."""

    name = "known"

    def __init__(self, faces):
        self.faces = faces
        self.calls = []

    def detect(self, image, color_order):
        self.calls.append((image.shape, color_order))
        return [Face(box, score) for box, score in self.faces]


def test_face_maps_are_pasted_back_exactly_where_their_crops_came_from(red_model):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (120, 200, 3), dtype=np.uint8)
    frame[30:70, 40:90, 2] = 255  # red-ish patches: the red model's map is high there
    frame[80:120, 150:200, 2] = 255
    detector = KnownFaces([((50, 40, 80, 70), 0.9), ((160, 90, 195, 118), 0.7), ((60, 50, 90, 80), 0.8)])
    provider = FaceRegions(detector, margin=0.25)
    with Locator.load(red_model, device="cpu", regions=provider, workers=1) as loc:
        result = loc.locate(frame)
    crops = [crop_box(box, 200, 120, 0.25) for box, _ in sorted(detector.faces, key=lambda f: -f[1])]
    with Locator.load(red_model, device="cpu") as plain:  # each crop on its own, no faces
        alone = [plain.locate(np.ascontiguousarray(frame[y0:y1, x0:x1])) for x0, y0, x1, y1 in crops]
    assert [f.box for f in result.faces] == [(50, 40, 80, 70), (60, 50, 90, 80), (160, 90, 195, 118)], "best first"
    assert [f.score for f in result.faces] == [0.9, 0.8, 0.7]
    assert [r.box for r in result.regions] == crops
    expected = np.zeros((120, 200), np.float32)
    for (x0, y0, x1, y1), r in zip(crops, alone):
        np.maximum(expected[y0:y1, x0:x1], r.map, out=expected[y0:y1, x0:x1])
    # The crops ran as one batch of 3, the references one at a time: a backend may pick other kernels
    # (other rounding) for another batch size, so these compare within float32 tolerances.
    np.testing.assert_allclose(result.map, expected, rtol=1e-5, atol=1e-6)
    assert result.score == pytest.approx(max(r.score for r in alone), rel=1e-5, abs=1e-6)
    record = result.to_record()
    assert record["faces"][0] == {"box": [50, 40, 80, 70], "score": 0.9} and len(record["regions"]) == 3


def test_without_a_face_the_whole_image_is_analysed_by_default_and_the_record_says_so(red_model, red_square):
    image = red_square(40, 60, (0, 0, 60, 40))  # fake for the red model: a faceless image is not thereby real
    with Locator.load(red_model, device="cpu", regions=FaceRegions(KnownFaces([]), fallback="none")) as loc:
        none = loc.locate(image)
    assert FaceOptions().fallback == "frame"
    with Locator.load(red_model, device="cpu", regions=FaceRegions(KnownFaces([]))) as loc:
        frame = loc.locate(image)
    assert (none.faces, none.regions, none.score, none.label) == ([], [], 0.0, "real") and not none.map.any()
    assert none.to_record()["analysed"] == "nothing"
    assert frame.faces == [] and frame.regions is None and frame.label == "fake"
    with Locator.load(red_model, device="cpu") as plain:
        np.testing.assert_array_equal(frame.map, plain.locate(image).map)
        assert "analysed" not in plain.locate(image).to_record()  # no face detection, no field
    record = frame.to_record()
    assert record["faces"] == [] and record["analysed"] == "image"


def test_options_are_checked():
    with pytest.raises(FakeLocatorError, match="fallback"):
        FaceOptions(fallback="skip")
    with pytest.raises(FakeLocatorError, match="--face-weights"):
        FaceOptions(detector="retinaface")
    with pytest.raises(FakeLocatorError, match="margin"):
        FaceOptions(margin=-1)
    with pytest.raises(FakeLocatorError, match="either regions or faces"):
        Locator.load("unused.onnx", regions=lambda *a: None, faces=True)


# ------------------------------------------------------------------------------------- videos

ASTRONAUT_PATCH = (120, 20, 320, 240)  # x0, y0, x1, y1 of the astronaut photo pasted into frames


def face_video(path: Path, frames: int = 6) -> tuple[Path, dict[int, tuple]]:
    """640×360 MJPG: even frames show the astronaut's head at a moving place, odd frames none.
    Returns the video and {frame: the face's box}."""
    x0, y0, x1, y1 = ASTRONAUT_PATCH
    patch = np.ascontiguousarray(astronaut_rgb()[y0:y1, x0:x1, ::-1])  # BGR, the face at 96 px
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (640, 360))
    rng = np.random.default_rng(0)
    faces = {}
    for i in range(frames):
        frame = cv2.GaussianBlur(rng.integers(60, 200, (360, 640, 3), dtype=np.uint8), (0, 0), 3)
        if i % 2 == 0:
            left, top = 40 + 80 * i, 60 + 10 * i
            frame[top:top + patch.shape[0], left:left + patch.shape[1]] = patch
            faces[i] = (left + ASTRONAUT_FACE[0] - x0, top + ASTRONAUT_FACE[1] - y0,
                        left + ASTRONAUT_FACE[2] - x0, top + ASTRONAUT_FACE[3] - y0)
        writer.write(frame)
    writer.release()
    return path, faces


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return face_video(tmp_path_factory.mktemp("faces") / "faces.avi")


def test_locate_video_with_faces_reports_each_frames_faces_and_leaves_faceless_frames_out(locator, clip):
    path, truth = clip
    video = locator.locate_video(path, faces=FaceOptions(fallback="none"))
    frames = list(video)
    for f in frames:
        if f.frame in truth:
            assert len(f.faces) == 1 and iou(f.faces[0].box, truth[f.frame]) > 0.5, (f.frame, f.faces)
            assert len(f.regions) == 1 and f.map.shape == (360, 640)
            x0, y0, x1, y1 = f.regions[0].box
            assert not f.map[:, :x0].any() and not f.map[:y0].any(), "zero outside the face's crop"
        else:
            assert f.faces == [] and f.regions == [] and f.score == 0.0
    summary = video.summary
    assert (summary.frames, summary.empty_frames) == (3, 3), "statistics over the frames with a face"
    assert summary.max_score == max(f.score for f in frames if f.frame in truth)
    plain = locator.locate_video(path)
    assert all(f.faces is None for f in plain) and plain.summary.empty_frames == 0, "faces only when asked"


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_trt_locate_faces_end_to_end_and_resume(tmp_path, monkeypatch, red_model, clip):
    path, truth = clip
    monkeypatch.chdir(tmp_path)
    args = [str(path), "--model", str(red_model), "--backend", "onnxruntime", "--device", "cpu", "--faces", "--quiet",
            "--faces-fallback", "none"]
    assert main(args + ["--out", "full"]) == 0
    full = records(tmp_path / "full")
    frames = [r for r in full if r["kind"] == "frame"]
    assert len(frames) == 6
    for r in frames:
        if r["frame"] in truth:
            assert len(r["faces"]) == 1 and iou(r["faces"][0]["box"], truth[r["frame"]]) > 0.5
            assert 0.5 <= r["faces"][0]["score"] <= 1 and len(r["regions"]) == 1
        else:
            assert r["faces"] == [] and r["regions"] == [] and r["score"] == 0.0
        assert (tmp_path / "full" / r["map"]).is_file()
    summary = full[-1]["summary"]
    assert (summary["frames"], summary["empty_frames"]) == (3, 3)

    # A run killed after three frames resumes to the same summary (faceless frames stay faceless).
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in full[:3]))
    assert main(args + ["--out", "cut", "--resume"]) == 0
    assert records(tmp_path / "cut")[-1]["summary"] == summary


def test_trt_locate_faces_analyses_faceless_images_whole_and_counts_them(tmp_path, red_model, red_square, capsys):
    import cv2

    cv2.imwrite(str(tmp_path / "no-face.png"), red_square(64, 64, (8, 8, 40, 40)))  # fake, and no face in it
    args = [str(tmp_path / "no-face.png"), "--model", str(red_model), "--device", "cpu", "--faces", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "out")]) == 0
    (record,) = records(tmp_path / "out")
    assert record["faces"] == [] and record["analysed"] == "image" and record["label"] == "fake"
    summary = capsys.readouterr().err
    assert "1 fake" in summary and "1 with no face found (the whole image analysed)" in summary and "1 analysed" in summary
    assert main(args + ["--out", str(tmp_path / "none"), "--faces-fallback", "none"]) == 0
    (record,) = records(tmp_path / "none")
    assert record["analysed"] == "nothing" and record["label"] == "real"
    summary = capsys.readouterr().err
    assert "1 with no face found (not analysed: score 0, real)" in summary and "0 analysed" in summary


def test_face_options_need_faces(tmp_path, red_model, capsys):
    assert main(["x.png", "--out", str(tmp_path / "o"), "--model", str(red_model), "--face-margin", "0.5"]) == 2
    assert "--face-margin only apply with --faces" in capsys.readouterr().err
    assert not (tmp_path / "o").exists(), "a usage error creates no output folder"


# ------------------------------------------------------------------------------------ imports


def test_faces_import_nothing_heavy_until_used_and_the_lbp_fallback_says_how_to_install_scikit_image(tmp_path, red_model):
    code = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("skimage", "torch", "facexlib"):
            raise ImportError(name + " is blocked")
import fakelocator.runtime.faces, fakelocator.runtime.face_detectors, fakelocator.runtime.cli
assert not [m for m in sys.modules if m.split(".")[0] in ("skimage", "torch", "facexlib")]
sys.meta_path.insert(0, Block())
from fakelocator.runtime import Locator
from fakelocator.runtime.faces import FaceOptions
Locator.load({str(red_model)!r}, device="cpu", faces=True).close()  # BlazeFace: onnxruntime only
try:
    Locator.load({str(red_model)!r}, device="cpu", faces=FaceOptions(detector="lbp"))
except Exception as e:
    print(type(e).__name__, e)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "FakeLocatorError" in result.stdout and "pip install 'fakelocator[faces]'" in result.stdout


# ---------------------------------------------------------------------------------- RetinaFace


def test_retinaface_from_a_local_file_decodes_like_facexlib_and_never_downloads(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("facexlib")
    import facexlib.detection
    import facexlib.utils.misc
    from facexlib.detection.retinaface import RetinaFace

    from fakelocator.runtime.face_detectors import RetinaFaceDetector

    def refuse(*a, **k):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(facexlib.detection, "load_file_from_url", refuse)
    monkeypatch.setattr(facexlib.utils.misc, "download_url_to_file", refuse)
    torch.manual_seed(0)
    reference = RetinaFace(network_name="mobile0.25", device="cpu")
    torch.save({f"module.{k}": v for k, v in reference.state_dict().items()}, tmp_path / "detection_mobilenet0.25_Final.pth")
    image = cv2.resize(grace_hopper_bgr(), (160, 192))
    with torch.no_grad():  # random weights: keep the 40 most confident anchors, whatever their score
        _, conf, _ = reference(torch.from_numpy(image).permute(2, 0, 1)[None].float() - reference.mean_tensor)
    threshold = float(np.sort(conf[0, :, 1].numpy())[-41])
    detector = RetinaFaceDetector(tmp_path / "detection_mobilenet0.25_Final.pth", device="cpu", threshold=threshold)
    assert detector.network == "mobile0.25"
    ours = detector.detect(image, "BGR")
    with torch.no_grad():
        theirs = reference.detect_faces(image, conf_threshold=threshold, nms_threshold=0.4)
    assert len(ours) == len(theirs) > 0
    np.testing.assert_allclose([f.box for f in ours], theirs[:, :4], atol=1e-3)
    np.testing.assert_allclose([f.score for f in ours], theirs[:, 4], atol=1e-5)
    rgb = detector.detect(np.ascontiguousarray(image[:, :, ::-1]), "RGB")
    assert [f.box for f in rgb] == [f.box for f in ours]
    with pytest.raises(FakeLocatorError, match="not RetinaFace weights"):
        torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pth")
        RetinaFaceDetector(tmp_path / "bad.pth", device="cpu")


@pytest.mark.needs_cuda
def test_retinaface_on_cuda_finds_what_the_cpu_finds(tmp_path):
    torch = pytest.importorskip("torch")
    from facexlib.detection.retinaface import RetinaFace

    from fakelocator.runtime.face_detectors import RetinaFaceDetector

    torch.manual_seed(0)
    weights = tmp_path / "detection_mobilenet0.25_Final.pth"
    torch.save(RetinaFace(network_name="mobile0.25", device="cpu").state_dict(), weights)
    image = cv2.resize(grace_hopper_bgr(), (320, 384))
    cpu = RetinaFaceDetector(weights, device="cpu", threshold=0.0)
    scores = sorted(f.score for f in cpu.detect(image, "BGR"))
    threshold = scores[-20] if len(scores) >= 20 else 0.0
    cpu.threshold = threshold
    cuda = RetinaFaceDetector(weights, device="cuda", threshold=threshold - 1e-3)
    found = cuda.detect(image, "BGR")
    for face in cpu.detect(image, "BGR"):
        assert any(iou(face.box, f.box) > 0.99 for f in found), face
