"""trt-locate runs against what a hostile folder, list or reader does: names that clash with what
the journal holds, a run ended by an error mid-way, stdout closed by `| head`, NUL bytes, byte-order
marks and names that are not UTF-8 in list files, unusable --out values, 255-byte names; and what the
records say about alpha in TIFFs, rotated videos and the tiles a video took."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fakelocator.runtime.cli import main
from fakelocator.runtime.inputs import expand


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def run(args: list[str], model: Path) -> int:
    return main([*args, "--model", str(model), "--workers", "2", "--threads", "1", "--quiet"])


# ---- the journal's names and records ---------------------------------------------------------------------


def test_resume_never_gives_a_recorded_inputs_map_name_to_another_input(tmp_path, monkeypatch, red_model):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clash").mkdir()
    cv2.imwrite("clash/b.jpg", picture(40, 50))
    cv2.imwrite("clash/b.png", picture(30, 70, seed=1))
    assert run(["clash/b.jpg", "--out", "o"], red_model) == 0
    first = cv2.imread("o/maps/clash/b.png", cv2.IMREAD_UNCHANGED).copy()
    assert run(["clash/b.png", "--out", "o", "--resume"], red_model) == 0
    assert run(["clash/b.jpg", "clash/b.png", "--out", "o", "--resume"], red_model) == 0  # both now: both done
    by_path = {r["path"]: r for r in records(tmp_path / "o")}
    assert by_path["clash/b.jpg"]["map"] == "maps/clash/b.png", "the recorded input keeps its name"
    assert by_path["clash/b.png"]["map"] == "maps/clash/b.png.png"
    np.testing.assert_array_equal(cv2.imread("o/maps/clash/b.png", cv2.IMREAD_UNCHANGED), first)
    assert cv2.imread("o/maps/clash/b.png.png", cv2.IMREAD_UNCHANGED).shape == (30, 70)
    assert len(records(tmp_path / "o")) == 2


def test_a_run_ended_by_an_error_leaves_no_map_without_its_record(tmp_path, red_model, monkeypatch):
    """Whatever ends a run (here the model failing on its last batch while maps are being written),
    every map it wrote is recorded."""
    import time

    from fakelocator.runtime import Locator, outputs
    from fakelocator.runtime import locator as locator_module
    from fakelocator.runtime.inputs import Input
    from fakelocator.runtime.outputs import Journal, Layout
    from fakelocator.runtime.run import RunOptions, run as run_inputs

    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), picture(40, 40, seed=i))
    slow_encode = outputs.encode_map
    monkeypatch.setattr("fakelocator.runtime.run.encode_map", lambda *a: time.sleep(1.5) or slow_encode(*a))
    layout = Layout(tmp_path / "out")
    journal = Journal(layout.results)
    with Locator.load(red_model, device="cpu", batch_size=1, threads=1) as loc:
        calls, infer = [], loc.backend.infer
        # The last input is decoded late, so the first three are analysed and handed to the (slow)
        # writers before its inference fails, while they write, however this machine schedules threads.
        load = locator_module.load_image
        monkeypatch.setattr(locator_module, "load_image",
                            lambda item, *a, **k: (str(item).endswith("3.png") and time.sleep(0.5)) or load(item, *a, **k))

        def infer_then_fail(x):
            calls.append(1)
            if len(calls) < 4:
                return infer(x)
            raise ZeroDivisionError

        monkeypatch.setattr(loc.backend, "infer", infer_then_fail)
        with pytest.raises(ZeroDivisionError):
            run_inputs(loc, [Input(str(p), "image", key=p.stem) for p in paths], layout, journal, RunOptions(writers=2))
    journal.close()
    written = sorted(p.relative_to(layout.root).as_posix() for p in (layout.root / "maps").rglob("*.png"))
    assert written and sorted(r["map"] for r in records(layout.root)) == written


def test_stdout_closed_by_its_reader_ends_the_run_quietly_with_every_written_map_recorded(tmp_path, red_model):
    for i in range(60):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), picture(40, 40, seed=i))
    code = ("import sys\nfrom fakelocator.runtime.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path), "--out", str(tmp_path / "out"), "--json", "--batch", "1",
         "--model", str(red_model), "--workers", "1", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    head = process.stdout.read(300)  # `| head -c 300`
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(60) == 141, err
    assert head.startswith(b'{"kind":"image"')
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err
    recorded = {r["map"] for r in records(tmp_path / "out")}
    written = {p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out" / "maps").rglob("*.png")}
    assert written == recorded and 1 <= len(recorded) < 60


# ---- list files and stdin ------------------------------------------------------------------------------------


def test_list_entries_with_nul_bytes_or_binary_junk_are_error_inputs_and_the_rest_is_read(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), picture(20, 20))
    (tmp_path / "list.txt").write_bytes(b"a.png\nbad\x00name.png\n\x89\xff\xfe\x00\x01junk\n")
    inputs = expand([str(tmp_path / "list.txt")], cwd=str(tmp_path))
    assert [i.error is None for i in inputs] == [True, False, False]
    assert inputs[1].error == "a path cannot contain a NUL byte" and "\\0" in inputs[1].path
    stdin = io.TextIOWrapper(io.BytesIO(b"\x00\x01\x02\n" + str(tmp_path / "a.png").encode() + b"\n"))
    inputs = expand(["-"], stdin=stdin, cwd=str(tmp_path))
    assert [i.error is None for i in inputs] == [False, True]


def test_a_byte_order_mark_is_not_part_of_the_first_entry(tmp_path):
    cv2.imwrite(str(tmp_path / "first.png"), picture(20, 20))
    (tmp_path / "list.txt").write_bytes("\ufefffirst.png\n".encode("utf-8"))
    (inputs,) = [expand([str(tmp_path / "list.txt")], cwd=str(tmp_path))]
    assert [(Path(i.path).name, i.error) for i in inputs] == [("first.png", None)]


def test_a_name_that_is_not_utf8_in_a_list_names_its_file_and_the_others_are_read(tmp_path, red_model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # a Latin-1 name, as old archives hold them (written by Python: cv2.imwrite crashes on such a name)
    (tmp_path / os.fsdecode(b"caf\xe9.png")).write_bytes(cv2.imencode(".png", picture(20, 20))[1].tobytes())
    cv2.imwrite("plain.png", picture(20, 20, seed=1))
    (tmp_path / "list.txt").write_bytes(b"caf\xe9.png\nplain.png\n")
    assert run(["list.txt", "--out", "o"], red_model) == 0
    assert sorted(os.fsencode(r["path"]) for r in records(tmp_path / "o")) == [b"caf\xe9.png", b"plain.png"]


# ---- --out and long names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["empty", "dangling", "loop"])
def test_an_unusable_out_is_a_usage_error_that_says_why(tmp_path, red_model, monkeypatch, capsys, kind):
    monkeypatch.chdir(tmp_path)
    cv2.imwrite("a.png", picture(20, 20))
    if kind == "empty":
        out, words = "", "--out must name a folder, got an empty name"
    elif kind == "dangling":
        os.symlink("nowhere", "out")
        out, words = "out", "--out out: a symbolic link to nowhere, which does not exist or loops"
    else:
        os.symlink("out", "out")
        out, words = "out", "--out out: a symbolic link to out, which does not exist or loops"
    assert run(["a.png", "--out", out], red_model) == 2
    err = capsys.readouterr().err
    assert words in err and "File exists" not in err and "Traceback" not in err
    assert not (tmp_path / "results.jsonl").exists()


def test_two_255_byte_names_that_clash_both_get_maps(tmp_path, red_model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stem = "x" * 251
    cv2.imwrite(f"{stem}.jpg", picture(20, 30))
    cv2.imwrite(f"{stem}.png", picture(30, 20, seed=1))
    assert run([f"{stem}.jpg", f"{stem}.png", "--out", "o", "--overlay"], red_model) == 0
    recs = records(tmp_path / "o")
    assert all(r["error"] is None for r in recs) and len({r["map"] for r in recs}) == 2
    for r in recs:
        name = r["map"].rpartition("/")[2]
        assert len(name.encode()) <= 255 and name.startswith("x" * 200)
        assert cv2.imread(f"o/{r['map']}", cv2.IMREAD_UNCHANGED).shape == (r["height"], r["width"])


# ---- what records say ------------------------------------------------------------------------------------------


def test_an_rgba_tiff_with_unassociated_alpha_is_analysed_with_its_colours_as_stored(tmp_path):
    from PIL import Image

    from fakelocator.runtime.decode import load_image

    rgba = np.dstack([picture(24, 32), np.tile(np.arange(32, dtype=np.uint8) * 8, (24, 1))])  # alpha 0..248
    rgba[:, :4, 3] = 0  # fully transparent columns keep their colours too
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.tiff")  # Pillow writes ExtraSamples = 2, unassociated
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    tiff, _, _ = load_image(tmp_path / "a.tiff")
    as_png, _, _ = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(tiff, rgba[:, :, 2::-1])  # BGR, alpha dropped
    np.testing.assert_array_equal(tiff, as_png)


def test_a_rotated_video_is_analysed_upright_as_players_show_it(tmp_path, locator):
    av = pytest.importorskip("av")
    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.set_display_rotation(90)  # shown turned a quarter counterclockwise: 120 wide, 160 high
        for _ in range(3):
            frame = np.zeros((120, 160, 3), np.uint8)
            frame[:40, :60] = (0, 0, 255)  # red in the stored top-left corner
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with locator.locate_video(path, keep_images=True) as video:
        frames = list(video)
        summary = video.summary
    assert (summary.width, summary.height) == (120, 160)
    for f in frames:
        assert f.image.shape == (160, 120, 3) and f.map.shape == (160, 120)
        assert f.image[150, 10, 2] > 200 and f.image[10, 110, 2] < 50, "the stored top-left is now the bottom-left"
        assert f.map[140:, :30].mean() > f.map[:40, 80:].mean() + 0.5


def test_a_video_summary_record_says_how_many_tiles_its_frames_took(tmp_path, red_model, video, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run([str(video), "--out", "o", "--every", "5"], red_model) == 0
    recs = records(tmp_path / "o")
    frames = [r for r in recs if r["kind"] == "frame"]
    (summary,) = [r for r in recs if r["kind"] == "video"]
    assert summary["tiles"] == sum(r["tiles"] for r in frames) == len(frames) == 4
