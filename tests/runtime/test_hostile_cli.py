"""trt-locate against hostile inputs and failing surroundings: FIFOs and devices, truncated videos,
two runs on one output folder, torn and foreign journal lines, its own outputs matched by a glob,
unreadable folders, a full disk, an unwritable output folder, library noise on stderr, thread counts,
and nothing written outside the output folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime import Locator
from fakelocator.runtime.cli import main
from fakelocator.runtime.limits import max_threads

ROOT = Path(__file__).parents[2]


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def images(folder: Path, n: int, size=(24, 24)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    paths = []
    for i in range(n):
        p = folder / f"{i:03d}.png"
        cv2.imwrite(str(p), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        paths.append(p)
    return paths


def cli(args, cwd, model, *, timeout=120, env=None, preamble=""):
    """trt-locate in a subprocess (its own stderr, fds and limits); ``preamble`` runs first in it."""
    code = preamble + "\nimport sys\nfrom fakelocator.runtime.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run(
        [sys.executable, "-c", code, *args, "--model", str(model), "--workers", "1", "--threads", "1"],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


# ---- inputs that are not regular files ----------------------------------------------------------------


def test_a_fifo_and_a_device_become_error_records_and_the_run_finishes(tmp_path, red_model):
    images(tmp_path / "in", 2)
    os.mkfifo(tmp_path / "in" / "x.png")
    os.mkfifo(tmp_path / "direct.png")
    result = cli(["in", "direct.png", "/dev/zero", "--out", "out"], tmp_path, red_model, timeout=60)
    assert result.returncode == 1, result.stderr
    by_path = {r["path"]: r for r in records(tmp_path / "out")}
    assert "FIFO" in by_path["in/x.png"]["error"] and "FIFO" in by_path["direct.png"]["error"]
    assert "character device" in by_path["/dev/zero"]["error"]
    assert by_path["in/000.png"]["error"] is None


# ---- thread counts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag, value", [("--threads", "100000"), ("--threads", "-5"), ("--workers", "0"),
                                         ("--workers", "100000"), ("--threads", "two")])
def test_thread_counts_are_validated_and_bounded(tmp_path, red_model, capsys, flag, value):
    with pytest.raises(SystemExit) as e:
        main(["x.png", "--out", str(tmp_path / "o"), "--model", str(red_model), flag, value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and value in err and (f"between" in err or "integer" in err)
    assert not (tmp_path / "o").exists()


def test_the_api_bounds_thread_counts_too(red_model):
    with pytest.raises(FakeLocatorError, match="threads must be between 0 and"):
        Locator.load(red_model, device="cpu", threads=max_threads() + 1)
    with pytest.raises(FakeLocatorError, match="threads must be between 0 and"):
        Locator.load(red_model, device="cpu", threads=-5)
    with pytest.raises(FakeLocatorError, match="workers must be between 1 and"):
        Locator.load(red_model, device="cpu", workers=-2)


# ---- videos that end early ------------------------------------------------------------------------------------


def test_a_truncated_video_fails_the_run(tmp_path, red_model, video):
    data = video.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    assert main(["cut.avi", "--out", str(tmp_path / "out"), "--model", str(red_model), "--quiet"]) == 1
    summary = [r for r in records(tmp_path / "out") if r["kind"] == "video"][0]
    assert summary["error"] is not None, summary
    frames = [r for r in records(tmp_path / "out") if r["kind"] == "frame"]
    assert all("time_s" in r for r in frames)


# ---- one run per output folder ------------------------------------------------------------------------------------


def test_a_second_run_on_a_locked_output_folder_stops_naming_the_first(tmp_path, red_model, capsys):
    images(tmp_path / "in", 1)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from fakelocator.runtime.outputs import OutputLock
            lock = OutputLock(Path({str(tmp_path / 'out')!r}))
            print("locked", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        rc = main([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", str(red_model), "--resume"])
        err = capsys.readouterr().err
        assert rc == 2 and f"in use by another trt-locate run (pid {holder.pid})" in err, err
        assert not (tmp_path / "out" / "results.jsonl").exists(), "nothing touched"
    finally:
        holder.kill()
        holder.wait()
    assert main([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", str(red_model), "--resume"]) == 0, \
        "a killed holder leaves no lock behind"


def test_two_concurrent_runs_on_one_folder_never_double_or_tear_records(tmp_path, red_model):
    images(tmp_path / "in", 40)
    args = ["in", "--out", "out", "--resume", "--batch", "1", "--model", str(red_model), "--workers", "1", "--threads", "1"]
    code = "import sys\nfrom fakelocator.runtime.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    procs = [subprocess.Popen([sys.executable, "-c", code, *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in outcomes)
    assert codes in ([0, 0], [0, 2]), outcomes
    if codes == [0, 2]:
        assert any("in use by another trt-locate run (pid" in err for _, err in outcomes)
    recs = records(tmp_path / "out")
    assert sorted(r["path"] for r in recs) == sorted(f"in/{i:03d}.png" for i in range(40))


# ---- the journal ---------------------------------------------------------------------------------------------------


def test_resume_skips_and_reports_torn_foreign_and_malformed_lines(tmp_path, red_model, capsys, monkeypatch):
    images(tmp_path / "in", 6)
    monkeypatch.chdir(tmp_path)
    assert main(["in", "--out", "out", "--model", str(red_model), "--quiet"]) == 0
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    damaged = [
        lines[0],
        '{"kind":"image","path":["a","list"],"score":0.5}',      # a list as path
        lines[1],
        '{"kind":"frame","path":"v.mp4","frame":3,"error":null}',  # a frame without a score
        "\x00\x01garbage from somewhere else",
        lines[2][: len(lines[2]) // 2],                            # torn in the middle by a concurrent writer
        "[1, 2, 3]",
        lines[3],
    ]
    (tmp_path / "out" / "results.jsonl").write_text("\n".join(damaged) + "\n")
    capsys.readouterr()
    assert main(["in", "--out", "out", "--model", str(red_model), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "skipped 5 line(s)" in err and "line 2: path is list" in err and "line 4: a frame record without a score" in err
    text = (tmp_path / "out" / "results.jsonl").read_text()
    assert text.startswith("\n".join(damaged) + "\n"), "nothing that was there is removed"
    good = {}
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("path"), str) and rec.get("score") is not None:
            good.setdefault(rec["path"], 0)
            good[rec["path"]] += 1
    assert good == {f"in/{i:03d}.png": 1 for i in range(6)}, "input 2 (torn) is done again, the others once"
    assert main(["in", "--out", "out", "--model", str(red_model), "--resume", "--quiet"]) == 0, "and again: still resumable"


@pytest.mark.parametrize("content", ["binary", "folder"])
def test_a_journal_that_is_not_one_is_a_one_line_error_and_left_alone(tmp_path, red_model, capsys, content):
    images(tmp_path / "in", 1)
    journal = tmp_path / "out" / "results.jsonl"
    if content == "folder":
        journal.mkdir(parents=True)
    else:
        journal.parent.mkdir()
        journal.write_bytes(bytes(range(256)) * 4)
    before = journal.read_bytes() if content == "binary" else None
    rc = main([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", str(red_model), "--resume"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("trt-locate: error: ") and "results.jsonl" in err[0], err
    if before is not None:
        assert journal.read_bytes() == before


def test_a_cut_last_line_is_removed_and_the_run_resumes(tmp_path, red_model, monkeypatch):
    images(tmp_path / "in", 3)
    monkeypatch.chdir(tmp_path)
    assert main(["in", "--out", "out", "--model", str(red_model), "--quiet"]) == 0
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    (tmp_path / "out" / "results.jsonl").write_text(lines[0] + "\n" + lines[1][:30])
    assert main(["in", "--out", "out", "--model", str(red_model), "--resume", "--quiet"]) == 0
    assert sorted(r["path"] for r in records(tmp_path / "out")) == [f"in/{i:03d}.png" for i in range(3)]


# ---- never read our own outputs -------------------------------------------------------------------------------------


def test_a_glob_that_matches_the_output_folder_does_not_ingest_its_maps(tmp_path, red_model, monkeypatch):
    images(tmp_path / "root", 2)
    monkeypatch.chdir(tmp_path)
    args = ["root/**/*.png", "--out", "root/out", "--model", str(red_model), "--quiet"]
    assert main(args) == 0
    for _ in range(2):
        assert main([*args, "--resume"]) == 0
    assert sorted(r["path"] for r in records(tmp_path / "root" / "out")) == ["root/000.png", "root/001.png"]
    assert main(["root", "root/out/maps/root/000.png", "--out", "root/out", "--model", str(red_model), "--overwrite",
                 "--quiet"]) == 1
    by_path = {r["path"]: r for r in records(tmp_path / "root" / "out")}
    assert "inside the output folder" in by_path["root/out/maps/root/000.png"]["error"]
    assert len(by_path) == 3


# ---- unreadable folders ------------------------------------------------------------------------------------------------


def _unprivileged(cmd, cwd):
    """Run ``cmd`` without root's power to ignore permissions: directly when not root, else as nobody."""
    if os.geteuid() != 0:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    result = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *cmd], cwd=cwd,
                            capture_output=True, text=True, timeout=120)
    if not (Path(cwd) / "out").exists():  # trt-locate creates --out first thing: it never started
        pytest.skip(f"this Python and fakelocator cannot run as nobody: {result.stderr.strip()[-300:]}")
    return result


def test_an_unreadable_subfolder_and_a_file_inside_it_get_permission_denied_records(tmp_path_factory, red_model):
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="fakelocator-perm-"))  # outside pytest's root-only tmp
    try:
        base.chmod(0o777)
        images(base / "in", 1)
        images(base / "in" / "locked", 1)
        model = base / "red.onnx"
        shutil.copy(red_model, model)
        for p in (base / "in", base / "in" / "000.png", base / "in" / "locked" / "000.png", model):
            p.chmod(0o755 if p.is_dir() else 0o644)
        (base / "in" / "locked").chmod(0o000)
        code = "import sys\nfrom fakelocator.runtime.cli import main\nsys.exit(main(sys.argv[1:]))\n"
        result = _unprivileged([sys.executable, "-c", code, "in", "in/locked/000.png", "--out", "out", "--model", str(model),
                                "--workers", "1", "--threads", "1"], base)
        assert result.returncode == 1, result.stderr
        by_path = {r["path"]: r for r in records(base / "out")}
        assert "permission denied" in by_path["in/locked"]["error"]
        assert "permission denied" in by_path["in/locked/000.png"]["error"], "not 'no such file'"
        assert by_path["in/000.png"]["error"] is None
    finally:
        (base / "in" / "locked").chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


# ---- a full disk, an unwritable output folder ------------------------------------------------------------------------------


def test_a_full_disk_stops_the_run_with_one_line_and_loses_no_record(tmp_path, red_model):
    images(tmp_path / "in", 30)
    out = tmp_path / "out"
    # Files may grow to 2500 bytes (RLIMIT_FSIZE; past it writes fail with EFBIG, as on a full disk):
    # the maps fit, the journal does not.
    limit = textwrap.dedent("""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2500, resource.RLIM_INFINITY))
    """)
    result = cli(["in", "--out", "out", "--batch", "1"], tmp_path, red_model, preamble=limit)
    err = [line for line in result.stderr.splitlines() if line.startswith("trt-locate: error")]
    assert result.returncode == 2, result.stderr
    assert len(err) == 1 and err[0].startswith("trt-locate: error: cannot write") and "--resume" in err[0], result.stderr
    assert "Traceback" not in result.stderr
    data = (out / "results.jsonl").read_bytes()
    assert data.endswith(b"\n") and 0 < data.count(b"\n") < 30
    kept = records(out)  # every line is a complete record
    result = cli(["in", "--out", "out", "--resume", "--quiet"], tmp_path, red_model)
    assert result.returncode == 0, result.stderr
    after = records(out)
    assert after[: len(kept)] == kept
    assert sorted(r["path"] for r in after) == sorted(f"in/{i:03d}.png" for i in range(30))


def test_map_writes_failing_for_the_folder_stop_the_run_instead_of_failing_every_input(tmp_path, red_model):
    images(tmp_path / "in", 5, size=(64, 64))
    limit = textwrap.dedent("""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, resource.RLIM_INFINITY))
    """)
    result = cli(["in", "--out", "out"], tmp_path, red_model, preamble=limit)
    assert result.returncode == 2 and "cannot write" in result.stderr and "Traceback" not in result.stderr
    journal = tmp_path / "out" / "results.jsonl"
    assert not journal.exists() or journal.read_text() == "", "no input recorded as failed for want of space"


def test_an_unwritable_output_folder_is_one_line(tmp_path, red_model):
    images(tmp_path / "in", 1)
    if os.geteuid() == 0:
        target = "/sys/fakelocator-test-out"  # not writable even by root
    else:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        target = str(tmp_path / "ro" / "out")
    result = cli(["in", "--out", target], tmp_path, red_model)
    err = [line for line in result.stderr.splitlines() if line.startswith("trt-locate: error")]
    assert result.returncode == 2 and len(err) == 1 and err[0].startswith("trt-locate: error: cannot write"), result.stderr
    assert "Traceback" not in result.stderr


# ---- stderr is trt-locate's own -------------------------------------------------------------------------------------------------


def test_library_noise_stays_off_stderr(tmp_path, red_model, video):
    import struct
    import zlib

    images(tmp_path / "in", 1)
    png = cv2.imencode(".png", np.zeros((20, 20, 3), np.uint8))[1].tobytes()
    bad_crc = png[:33] + struct.pack(">I", 13) + b"tEXtComment\x00hello" + struct.pack(">I", 1) + png[33:]
    (tmp_path / "in" / "crc.png").write_bytes(bad_crc)  # libpng: "tEXt: CRC error"
    iccp = b"x\x00\x00" + zlib.compress(b"garbage profile")
    short_iccp = png[:33] + struct.pack(">I", len(iccp)) + b"iCCP" + iccp + struct.pack(">I", zlib.crc32(b"iCCP" + iccp)) + png[33:]
    (tmp_path / "in" / "iccp.png").write_bytes(short_iccp)  # libpng: "iCCP: too short"
    (tmp_path / "in" / "text.avi").write_bytes(b"\x1b[31mnot a video\x07\n" * 50)
    data = video.read_bytes()
    (tmp_path / "in" / "cut.mp4").write_bytes(data[:300])
    result = cli(["in", "--out", "out"], tmp_path, red_model)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if not line.startswith("native pre/post-processing")]
    assert lines and all(line.startswith("trt-locate: ") for line in lines), result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    by_path = {r["path"]: r for r in records(tmp_path / "out") if r["kind"] != "frame"}
    assert by_path["in/crc.png"]["error"] is None and by_path["in/iccp.png"]["error"] is None
    assert "not a readable video" in by_path["in/text.avi"]["error"]


def test_nothing_is_written_outside_the_output_folder(tmp_path, red_model):
    images(tmp_path / "work" / "in", 1)
    home = tmp_path / "home"
    home.mkdir()
    before = sorted(p.name for p in (tmp_path / "work").iterdir())
    run_env = {k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "ORT_DISABLE_TELEMETRY")}
    run_env["HOME"] = str(home)
    code = "import sys\nfrom fakelocator.runtime.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    result = subprocess.run([sys.executable, "-c", code, "in", "--out", "out", "--model", str(red_model)],
                            cwd=tmp_path / "work", capture_output=True, text=True, timeout=120, env=run_env)
    assert result.returncode == 0, result.stderr
    assert list(home.rglob("*")) == [], "onnxruntime's telemetry (or anything else) wrote under $HOME"
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == sorted(before + ["out"])
