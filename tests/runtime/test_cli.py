"""trt-locate end to end: generated images, a generated video, a corpus of bad inputs, resume after SIGKILL."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fakelocator.runtime.cli import main
from fakelocator.runtime.outputs import read_map


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def write(path: Path, image: np.ndarray, ext: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(ext or path.suffix, image)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


@pytest.fixture
def good(tmp_path, red_square, video):
    """A folder of images of every accepted kind, plus a video, in tmp_path/in (the current folder is tmp_path)."""
    root = tmp_path / "in"
    write(root / "photo.jpg", red_square(101, 77, (10, 10, 50, 60)))
    write(root / "gray16.png", (np.arange(35 * 45, dtype=np.uint16).reshape(35, 45) * 37))
    rgba = np.dstack([red_square(20, 30, (0, 0, 15, 20)), np.full((20, 30), 128, np.uint8)])
    write(root / "sub" / "alpha.png", rgba)
    write(root / "sub" / "palette.gif", red_square(16, 16, (4, 4, 12, 12)))
    write(root / "sub" / "dot.bmp", np.full((16, 16, 3), 60, np.uint8))  # the smallest analysed (MIN_SIDE)
    write(root / "sub" / "wide.webp", red_square(16, 900, (400, 0, 500, 16)))
    (root / "clips").mkdir()
    (root / "clips" / "clip.avi").write_bytes(video.read_bytes())
    return root


@pytest.fixture
def bad(tmp_path, red_square):
    """One file per way an input can be bad; returns {path: expected words in its error}."""
    root = tmp_path / "bad"
    root.mkdir()
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.jpg").write_text("not an image at all")
    jpg = cv2.imencode(".jpg", red_square(64, 64, (0, 0, 30, 30)))[1].tobytes()
    (root / "cut.jpg").write_bytes(jpg[: len(jpg) // 2])
    png = bytearray(cv2.imencode(".png", np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8))[1].tobytes())
    (root / "cut.png").write_bytes(bytes(png[: len(png) - 100]))
    png[70:140] = bytes(70)
    (root / "corrupt.png").write_bytes(bytes(png))
    write(root / "huge.png", np.zeros((300, 400, 3), np.uint8))
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 100)
    return {
        "bad/empty.jpg": "empty file",
        "bad/text.jpg": "not an image in a supported format",
        "bad/cut.jpg": "truncated JPEG",
        "bad/cut.png": "truncated PNG",
        "bad/corrupt.png": "corrupt PNG data",
        "bad/huge.png": "over the limit",
        "bad/broken.mp4": "not a readable video",
        "bad/missing.png": "no such file",
    }


def run_cli(args: list[str], red_model: Path) -> int:
    return main([*args, "--model", str(red_model), "--workers", "2", "--threads", "1"])


def test_images_and_a_video_end_to_end(tmp_path, monkeypatch, good, red_model, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_cli(["in", "--out", "out", "--every", "4", "--overlay"], red_model) == 0
    recs = records(tmp_path / "out")
    by_path = {(r["path"], r["frame"]): r for r in recs}
    assert {r["kind"] for r in recs} == {"image", "frame", "video"}
    images = [r for r in recs if r["kind"] == "image"]
    assert len(images) == 6 and all(r["error"] is None for r in images)
    for r in images:
        source = cv2.imread(r["path"], cv2.IMREAD_UNCHANGED)
        m = cv2.imread(str(tmp_path / "out" / r["map"]), cv2.IMREAD_UNCHANGED)
        assert m.dtype == np.uint8 and m.ndim == 2
        assert m.shape == source.shape[:2] == (r["height"], r["width"])
        over = cv2.imread(str(tmp_path / "out" / r["overlay"]))
        assert over.shape == source.shape[:2] + (3,)
        assert set(r["timings_ms"]) == {"decode", "preprocess", "infer", "upsample", "write"}
    assert by_path[("in/photo.jpg", None)]["map"] == "maps/in/photo.png"
    assert by_path[("in/photo.jpg", None)]["overlay"] == "overlays/in/photo.jpg"
    assert by_path[("in/photo.jpg", None)]["label"] == "fake"
    assert by_path[("in/sub/dot.bmp", None)]["label"] == "real"

    frames = [r for r in recs if r["kind"] == "frame"]
    assert [r["frame"] for r in frames] == [0, 4, 8, 12, 16]
    assert frames[1]["map"] == "maps/in/clips/clip/000004.png"
    assert (tmp_path / "out" / "overlays/in/clips/clip/000004.jpg").is_file()
    (summary,) = [r for r in recs if r["kind"] == "video"]
    assert summary["summary"]["frames"] == 5 and summary["error"] is None
    assert summary["label"] == "real"  # frames 0, 4, 8, ... are the black ones

    err = capsys.readouterr().err
    assert "7 inputs (6 images, 1 video, 5 frames): 7 ok, 0 failed" in err
    assert "maps in out/maps" in err


def test_bad_inputs_each_get_one_error_record_and_the_rest_completes(tmp_path, monkeypatch, good, bad, red_model, capsys):
    monkeypatch.chdir(tmp_path)
    code = run_cli(["in", "bad", "bad/missing.png", "--out", "out", "--max-pixels", "100000", "--max-frames", "3"], red_model)
    assert code == 1
    recs = records(tmp_path / "out")
    failed = {r["path"]: r["error"] for r in recs if r["error"] is not None}
    assert set(failed) == set(bad)
    for path, words in bad.items():
        assert words in failed[path], (path, failed[path])
    assert all(r["map"] is None for r in recs if r["error"] is not None)
    ok = [r for r in recs if r["error"] is None and r["kind"] == "image"]
    assert len(ok) == 6 and all((tmp_path / "out" / r["map"]).is_file() for r in ok)
    err = capsys.readouterr().err
    assert "bad/cut.jpg: truncated JPEG" in err
    assert "8 failed" in err
    frames = sum(r["kind"] == "frame" and r["error"] is None for r in recs)
    assert f"{len(ok) + frames} analysed" in err, "inputs that failed to decode are not counted as analysed"


def test_16_bit_maps_carry_the_map_at_65535_levels(tmp_path, monkeypatch, good, red_model):
    from fakelocator.runtime import Locator

    monkeypatch.chdir(tmp_path)
    assert run_cli(["in/photo.jpg", "--out", "out", "--map-depth", "16"], red_model) == 0
    (rec,) = records(tmp_path / "out")
    written = cv2.imread(str(tmp_path / "out" / rec["map"]), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.shape == (101, 77)
    with Locator.load(red_model, device="cpu") as loc:
        expected = loc.locate("in/photo.jpg").map
    assert np.array_equal(written, np.floor(expected * 65535 + 0.5).astype(np.uint16))
    np.testing.assert_allclose(read_map(tmp_path / "out" / rec["map"]), expected, atol=1 / 65535)


def test_json_streams_records_on_stdout(tmp_path, monkeypatch, good, red_model, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_cli(["in/sub", "--out", "out", "--json", "--quiet"], red_model) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == records(tmp_path / "out")


def test_list_files_stdin_globs_and_absolute_paths(tmp_path, monkeypatch, good, red_model):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in" / "list.txt").write_text("# two images\nphoto.jpg\n\nsub/dot.bmp\n")
    elsewhere = write(tmp_path.parent / f"{tmp_path.name}-elsewhere" / "far.png", np.zeros((19, 19, 3), np.uint8))
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{elsewhere}\n"))
    assert run_cli(["in/list.txt", "in/sub/*.gif", "-", "--out", "out"], red_model) == 0
    maps = {r["path"]: r["map"] for r in records(tmp_path / "out")}
    assert maps["in/photo.jpg"] == "maps/in/photo.png"
    assert maps["in/sub/dot.bmp"] == "maps/in/sub/dot.png"
    assert maps["in/sub/palette.gif"] == "maps/in/sub/palette.png"
    assert maps[str(elsewhere)] == "maps/_abs/" + str(elsewhere.with_suffix(".png")).lstrip("/")


def test_same_stem_inputs_keep_their_suffix(tmp_path, monkeypatch, red_model):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "a" / "b.jpg", np.zeros((16, 17, 3), np.uint8))
    write(tmp_path / "a" / "b.png", np.zeros((18, 19, 3), np.uint8))
    assert run_cli(["a", "--out", "out"], red_model) == 0
    maps = {r["path"]: r["map"] for r in records(tmp_path / "out")}
    assert maps == {"a/b.jpg": "maps/a/b.jpg.png", "a/b.png": "maps/a/b.png.png"}


def test_the_output_folder_inside_an_input_folder_is_not_an_input(tmp_path, monkeypatch, good, red_model):
    monkeypatch.chdir(tmp_path)
    assert run_cli(["in/sub", "--out", "in/sub/out"], red_model) == 0
    assert run_cli(["in/sub", "--out", "in/sub/out", "--resume"], red_model) == 0
    assert len(records(tmp_path / "in/sub/out")) == 4


def test_usage_and_model_errors_exit_2(tmp_path, monkeypatch, good, red_model, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["--out", "out"])  # no input
    assert e.value.code == 2
    assert main(["in", "--out", "out", "--model", "nope.onnx"]) == 2
    assert "error: model nope.onnx: no such file" in capsys.readouterr().err
    assert run_cli(["in/photo.jpg", "--out", "out"], red_model) == 0
    assert run_cli(["in/photo.jpg", "--out", "out"], red_model) == 2  # results.jsonl exists
    assert "pass --resume" in capsys.readouterr().err
    assert run_cli(["in/photo.jpg", "--out", "out", "--overwrite"], red_model) == 0
    assert len(records(tmp_path / "out")) == 1


def test_out_defaults_to_runs_locate(tmp_path, monkeypatch, good, red_model):
    monkeypatch.chdir(tmp_path)
    assert run_cli(["in/photo.jpg"], red_model) == 0
    assert len(records(tmp_path / "runs" / "locate")) == 1


def test_resume_after_a_kill_mid_video(tmp_path, monkeypatch, good, red_model):
    """A journal cut inside a video (with a torn last line) resumes without repeating any frame."""
    monkeypatch.chdir(tmp_path)
    assert run_cli(["in/clips/clip.avi", "in/photo.jpg", "--out", "full", "--every", "2"], red_model) == 0
    full = (tmp_path / "full" / "results.jsonl").read_text().splitlines()
    kept = full[:5]  # photo + frames 0, 2, 4, 6
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "results.jsonl").write_text("\n".join(kept) + "\n" + full[5][:20])
    assert run_cli(["in/clips/clip.avi", "in/photo.jpg", "--out", "cut", "--every", "2", "--resume"], red_model) == 0
    resumed = records(tmp_path / "cut")
    keys = [(r["path"], r["frame"], r["kind"]) for r in resumed]
    assert len(keys) == len(set(keys)) == len(full)
    summary = [r for r in resumed if r["kind"] == "video"][0]["summary"]
    assert summary == [json.loads(line) for line in full if '"kind":"video"' in line][0]["summary"]


def test_sigkill_then_resume_records_every_input_exactly_once(tmp_path, red_model):
    images = tmp_path / "many"
    rng = np.random.default_rng(0)
    for i in range(300):
        write(images / f"{i // 100}" / f"{i:03d}.png", rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    cmd = [sys.executable, "-m", "fakelocator.runtime.cli", "many", "--out", "out", "--model", str(red_model),
           "--batch", "1", "--workers", "1", "--threads", "1", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    journal = tmp_path / "out" / "results.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_bytes().count(b"\n") >= 10:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done_before = journal.read_bytes().count(b"\n")
    assert 10 <= done_before < 300

    resumed = subprocess.run([*cmd, "--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{min(done_before, 300)} already done" in resumed.stderr or "already done" in resumed.stderr
    recs = records(tmp_path / "out")
    paths = [r["path"] for r in recs]
    assert len(paths) == len(set(paths)) == 300
    for r in recs:
        assert cv2.imread(str(tmp_path / "out" / r["map"]), cv2.IMREAD_UNCHANGED).shape == (24, 24)
    leftovers = [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".trt-locate-")]
    assert leftovers == []
