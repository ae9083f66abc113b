"""How trt-locate arguments expand into inputs, and how each input's output files are named."""

from __future__ import annotations

import io
import os

from fakelocator.runtime.inputs import Input, assign_keys, base_key, expand


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_base_keys(tmp_path):
    cwd = str(tmp_path)
    assert str(base_key("a/b.jpg", cwd)) == "a/b.jpg"
    assert str(base_key("./a/../a/b.jpg", cwd)) == "a/b.jpg"
    assert str(base_key(str(tmp_path / "a" / "b.jpg"), cwd)) == "a/b.jpg"  # absolute, inside cwd
    assert str(base_key("/data/x.png", cwd)) == "_abs/data/x.png"
    outside = os.path.normpath(os.path.join(cwd, "..", "y.png"))
    assert str(base_key("../y.png", cwd)) == "_abs" + outside


def test_clashing_stems_keep_their_suffixes():
    inputs = [Input("a/b.jpg", "image"), Input("a/b.png", "image"), Input("a/c.jpg", "image")]
    assert [i.key for i in assign_keys(inputs, "/")] == ["a/b.jpg", "a/b.png", "a/c"]


def test_a_video_whose_frame_folder_holds_an_image_keeps_its_suffix():
    inputs = [Input("v/clip.mp4", "video"), Input("v/clip/000001.jpg", "image"), Input("w/other.mp4", "video")]
    assert [i.key for i in assign_keys(inputs, "/")] == ["v/clip.mp4", "v/clip/000001", "w/other"]


def test_folders_recurse_sorted_skipping_hidden_files_and_the_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("in/b.jpg", "in/a.png", "in/sub/c.mp4", "in/.hidden.jpg", "in/notes.md", "in/out/maps/x.png"):
        touch(tmp_path / name)
    found = expand(["in"], exclude="in/out")
    assert [(i.path, i.kind) for i in found] == [("in/a.png", "image"), ("in/b.jpg", "image"), ("in/sub/c.mp4", "video")]


def test_duplicates_are_dropped_and_missing_things_become_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    touch(tmp_path / "in" / "a.jpg")
    (tmp_path / "empty").mkdir()
    found = expand(["in", "in/a.jpg", str(tmp_path / "in" / "a.jpg"), "nope.jpg", "in/*.gif", "empty"])
    assert [(i.path, i.error) for i in found] == [
        ("in/a.jpg", None),
        ("nope.jpg", "no such file"),
        ("in/*.gif", "no image or video matches this pattern"),
        ("empty", "folder has no images or videos"),
    ]


def test_list_files_and_stdin(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    touch(tmp_path / "lists" / "imgs" / "a.jpg")
    touch(tmp_path / "b.jpg")
    (tmp_path / "lists" / "todo.txt").write_text("# comment\nimgs/a.jpg\n\n")
    found = expand(["lists/todo.txt", "-"], stdin=io.StringIO("b.jpg\n"))
    assert [i.path for i in found] == ["lists/imgs/a.jpg", "b.jpg"]


def test_recursive_globs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    touch(tmp_path / "x" / "1.jpg")
    touch(tmp_path / "x" / "y" / "2.jpg")
    touch(tmp_path / "x" / "y" / "3.png")
    assert [i.path for i in expand(["x/**/*.jpg"])] == ["x/1.jpg", "x/y/2.jpg"]
