"""scripts/gpu-check: the one command a lent GPU runs (issue 18). Its GPU steps cannot run here; this
checks what decides whether that run leaves results: the dry run (every step's command against the
command's own --help, the import tree, the paths), the budget, killing a step at its limit while
keeping its output, the summary's figures and the archive that comes back."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu-check"


@pytest.fixture(scope="module")
def gc():
    loader = importlib.machinery.SourceFileLoader("gpu_check", str(SCRIPT))
    spec = importlib.util.spec_from_loader("gpu_check", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up
    try:
        loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("gpu_check", None)


def context(gc, tmp_path, *, budget_s=60.0, dry_run=False):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return gc.Context(out=out, work=tmp_path / "work", python=sys.executable, dry_run=dry_run, budget_s=budget_s,
                      started=time.monotonic(), cuda_arch=None, native_lib=None, env=dict(os.environ))


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait long for a reaper in a container)."""
    for _ in range(20):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        if state in "ZX":
            return False
        time.sleep(0.1)
    return True


# ------------------------------------------------------------------------------ dry run


def test_the_dry_run_checks_every_step_against_the_real_commands_and_writes_the_summary(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    done = subprocess.run([sys.executable, str(SCRIPT), str(out), "--dry-run", "--work", str(work), "--export", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    steps = {s["name"]: s for s in summary["steps"]}
    assert list(steps) == ["setup", "models", "tests", "kernels", "device-pipeline", "bench-r101", "bench-default",
                           "bench-r101-native", "bench-default-native", "bench-r101-sweep", "train"]
    assert all(s["status"] in ("dry_run", "skipped") and not s["problems"] for s in steps.values()), steps
    for name in ("bench-r101-native", "bench-default-native"):  # only when fakelocator bench has --analysis
        assert steps[name]["status"] == "dry_run" or "--analysis" in steps[name]["reason"]
    commands = {name: " ".join(c["command"] for c in s["commands"]) for name, s in steps.items()}
    assert "-m pytest tests -m needs_cuda" in commands["tests"] and f"--junit-xml={out}/tests/junit.xml" in commands["tests"]
    if shutil.which("nvcc"):  # no GPU here: the architecture defaults to the H200's
        assert "-DCMAKE_CUDA_ARCHITECTURES=90-real" in commands["setup"] or "-arch=sm_90" in commands["setup"]
    assert "fakelocator.benchmarks.kernels --device cuda" in commands["kernels"]
    r101 = commands["bench-r101"]
    assert "fakelocator.cli bench --model" in r101 and "untrained-deeplabv3_resnet101.safetensors" in r101
    assert "--backend torch --precision fp16 --device cuda --batch-sizes 64 --inputs direct224,1080p" in r101 and "--budget-s 0" in r101
    assert "--baseline-images 50" in r101 and "--no-baseline" in commands["bench-r101-sweep"]
    assert commands["train"].endswith("scripts/train-default-model")
    # fakelocator came from the import tree (the GPU machine has no install), not from this .venv's
    modules = summary["environment"]["python"]["modules"]
    assert all(path.startswith(str(work / "pythonpath")) for name, path in modules.items() if name.startswith("fakelocator"))
    assert "## Headline" in (out / "summary.md").read_text()
    with tarfile.open(tmp_path / "x" / "gpu-check.tar.gz") as tar:
        assert "gpu-check/summary.json" in tar.getnames() and "gpu-check/setup/result.json" in tar.getnames()
    assert (tmp_path / "x" / "summary.md").is_file()


def test_a_dry_run_names_an_option_a_command_lacks_a_missing_path_and_program(gc, tmp_path):
    ctx = context(gc, tmp_path, dry_run=True)
    help_argv = [sys.executable, "-m", "tool", "--help"]
    ctx.facts["_help"] = {" ".join(help_argv): "usage: tool [--batch N] [--out DIR]\n  --batch-size N  not --batch-like"}
    problems = gc.check_command(ctx, [sys.executable, "-m", "tool", "--batch", "8", "--outt=x"], help_argv, (tmp_path / "nope",))
    assert problems == [f"{tmp_path / 'nope'}: missing", f"`{' '.join(help_argv)}` does not list --outt"]
    assert gc.check_command(ctx, ["no-such-program-x"], None, ()) == ["no-such-program-x: not found"]
    assert not ctx.has_option(help_argv, "--batch-like") or ctx.has_option(help_argv, "--batch")
    assert not ctx.has_option(help_argv, "--out-dir") and ctx.has_option(help_argv, "--batch-size")


def test_steps_and_groups_select_what_they_need(gc):
    names = [s.name for s in gc.select_steps("bench-r101,kernels")]
    assert names == ["setup", "models", "kernels", "device-pipeline", "bench-r101"]
    assert [s.name for s in gc.select_steps("tests")] == ["setup", "tests"]
    with pytest.raises(gc.CheckError, match="unknown nope"):
        gc.select_steps("tests,nope")


# ------------------------------------------------------------------------------- budget


def test_the_budget_gives_each_step_what_is_left_and_skips_what_no_longer_fits(gc):
    noop = lambda ctx, run: None  # noqa: E731
    steps = [gc.Step("a", "g", "", 10, 100, noop), gc.Step("bg", "g", "", 10, 300, noop, finish=noop),
             gc.Step("b", "g", "", 30, 60, noop), gc.Step("c", "g", "", 50, 1000, noop)]
    assert gc.allot(steps[0], 500) == 100 and gc.allot(steps[3], 500) == 500 - gc.RESERVE_S
    assert gc.allot(steps[2], 30 + gc.RESERVE_S - 1) is None
    rows = gc.plan(steps, 200)
    # the background step overlaps the next ones; "c" gets what is left after "b", less the reserve
    assert [(r["step"], r["start_s"], r["limit_s"]) for r in rows] == [
        ("a", 0, 100), ("bg", 100, 100 - gc.RESERVE_S), ("b", 100, 60), ("c", 160, None)]
    assert gc.plan(steps, 250)[3]["limit_s"] == 250 - 160 - gc.RESERVE_S


def test_a_step_past_its_limit_is_killed_with_its_children_and_keeps_what_it_wrote(gc, tmp_path):
    pid_file = tmp_path / "child.pid"
    code = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); print('partial result', flush=True); time.sleep(60)")

    def slow(ctx, run):
        ctx.call(run, [sys.executable, "-c", code])
        run.metrics["parsed"] = True  # a step reads what was written even when cut off

    def quick(ctx, run):
        ctx.call(run, [sys.executable, "-c", "print('fine')"])

    steps = [gc.Step("slow", "g", "slow", 1, 2, slow), gc.Step("quick", "g", "quick", 1, 30, quick),
             gc.Step("late", "g", "late", 1000, 1000, quick)]
    ctx = context(gc, tmp_path, budget_s=60)
    (ctx.out / "big.bin").write_bytes(b"\0" * (gc.ARCHIVE_MAX_FILE + 1))
    t0 = time.monotonic()
    rc = gc.Runner(ctx, steps, tmp_path / "export").run()
    assert time.monotonic() - t0 < 30 and rc == 1
    summary = json.loads((ctx.out / "summary.json").read_text())
    status = {s["name"]: s["status"] for s in summary["steps"]}
    assert status == {"slow": "timed_out", "quick": "passed", "late": "skipped"}
    slow_result = json.loads((ctx.out / "slow" / "result.json").read_text())
    assert slow_result["metrics"] == {"parsed": True} and slow_result["commands"][0]["timed_out"]
    log = (ctx.out / "slow" / "log.txt").read_text()
    assert "partial result" in log and re.search(r"\[gpu-check\] stopped after \d+ s \(limit 2 s\)", log)
    assert not running(int(pid_file.read_text())), "the grandchild went with its process group"
    assert "budget" in summary["steps"][2]["reason"]
    with tarfile.open(tmp_path / "export" / "gpu-check.tar.gz") as tar:
        names = tar.getnames()
        assert "gpu-check/slow/log.txt" in names and "gpu-check/big.bin" not in names
        assert b"big.bin (8.0 MiB)" in tar.extractfile("gpu-check/LEFT_OUT.txt").read()
    assert json.loads((tmp_path / "export" / "summary.json").read_text())["final"] is True


def test_a_step_waits_a_bounded_time_for_a_background_step_it_needs(gc, tmp_path, monkeypatch):
    monkeypatch.setattr(gc, "JOIN_WAIT_S", 1.0)

    def start(ctx, run):
        run.job = ctx.start(run, [sys.executable, "-c", "import time; print('building', flush=True); time.sleep(60)"])
        ctx.background.append(run.job)

    def uses(ctx, run):
        ctx.call(run, [sys.executable, "-c", "print('measuring')"])

    steps = [gc.Step("bg", "g", "bg", 1, 50, start, finish=gc.wait_background),
             gc.Step("other", "g", "other", 1, 10, uses), gc.Step("needs-bg", "g", "needs", 1, 10, uses, needs=("bg",))]
    ctx = context(gc, tmp_path, budget_s=100)
    t0 = time.monotonic()
    gc.Runner(ctx, steps, None).run()
    assert time.monotonic() - t0 < 20
    results = {s["name"]: s for s in json.loads((ctx.out / "summary.json").read_text())["steps"]}
    assert results["bg"]["status"] == "timed_out" and results["needs-bg"]["status"] == "passed"
    assert any("ran beside the background step bg" in n for n in results["other"]["notes"])
    assert "building" in (ctx.out / "bg" / "log.txt").read_text() and not ctx.background


def test_the_archive_stays_under_what_the_device_tool_brings_back(gc, tmp_path):
    ctx = context(gc, tmp_path)
    rng = __import__("numpy").random.default_rng(0)
    for name in ("a", "b", "c"):  # incompressible: 18 MiB together, each under the 8 MiB cut
        (ctx.out / f"{name}.bin").write_bytes(rng.bytes(6 << 20))
    (ctx.out / "log.txt").write_text("kept")
    (ctx.out / "summary.md").write_text("s")
    (ctx.out / "summary.json").write_text("{}")
    gc.export(ctx, tmp_path / "x")
    assert (tmp_path / "x" / "gpu-check.tar.gz").stat().st_size <= gc.ARCHIVE_MAX_TOTAL
    with tarfile.open(tmp_path / "x" / "gpu-check.tar.gz") as tar:
        assert "gpu-check/log.txt" in tar.getnames() and "gpu-check/a.bin" not in tar.getnames()
        assert b"over 1 MiB" in tar.extractfile("gpu-check/LEFT_OUT.txt").read()


# ------------------------------------------------------------------------------ figures


def bench_json(*, targets=True) -> dict:
    def row(kind, ips, ratio, frac=None, pre_post=None):
        return {"input": kind, "batch": 64, "backend": "torch", "precision": "fp16", "device": "cuda:0",
                "end_to_end": {"images_per_s": ips, "latency": {"p50_ms": 64000 / ips}}, "vs_baseline": ratio,
                "limits": {"achieved_tflops": 400.0, "peak_tflops": 989.4, "fraction_of_peak": frac, "fraction_of_measured_matmul": 0.5},
                "pre_post_fraction": pre_post, "serial_ms_per_image": 1.0, "stage_ms_per_image": {}}

    data = {"model": {"config": {"backbone": "deeplabv3_resnet101", "preprocessing": {"height": 224, "width": 224}},
                      "flops": {"gflops_per_image": 94.3}},
            "environment": {"gpu": {"name": "NVIDIA H200"}},
            "ceilings": {"peak": {"name": "H200 SXM", "fp16_tflops": 989.4, "fp32_tflops": 66.9, "source": "NVIDIA H200 datasheet"},
                         "matmul": {"fp16_tflops": 800.0}, "device_copy": {"gb_per_s": 4000.0}},
            "baseline": {"inputs": {"direct224": {"images_per_s": 100.0}}},
            "runs": [row("direct224", 4000.0, 40.0, frac=0.404), row("1080p", 500.0, 6.0, pre_post=0.08)], "skipped": []}
    if targets:
        data["targets"] = [{"target": "GPU inference, fraction of FP16 peak", "required": ">= 40%", "measured": 0.404,
                            "met": True, "detail": "torch"}]
    return data


def test_the_summary_reads_the_targets_figures_from_the_steps_results(gc, tmp_path):
    ctx = context(gc, tmp_path)
    (tmp_path / "bench.json").write_text(json.dumps(bench_json()))
    r101 = gc.parse_bench(ctx, tmp_path / "bench.json")
    kernels = gc.parse_kernels({"batch": 64, "frame": [1080, 1920], "rows": [
        {"stage": "preprocess_fp16", "path": "native cuda", "ms": 6.4, "ms_per_frame": 0.1, "gb_per_s": 1000.0},
        {"stage": "upsample", "path": "native cuda", "ms": 6.4, "ms_per_frame": 0.3, "gb_per_s": 2000.0},
        {"stage": "upsample", "path": "native cpu, 1 thread", "ms": 640.0, "ms_per_frame": 10.0, "gb_per_s": 20.0},
        {"stage": "tiles_fp16", "path": "native cuda", "ms": 32.0, "ms_per_frame": 0.5, "gb_per_s": 3000.0},
        {"stage": "stitch_fp32", "path": "native cuda", "ms": 32.0, "ms_per_frame": 0.5, "gb_per_s": 3000.0},
        {"stage": "device_copy", "path": "native cuda", "ms": 0.5, "ms_per_frame": None, "gb_per_s": 4000.0}],
        "checks": {"cuda_equals_cpu_upsample": True, "device": {"name": "NVIDIA H200"}}})
    assert kernels["stages"]["upsample"] == {"ms_per_frame": 0.3, "gb_per_s": 2000.0, "fraction_of_device_copy": 0.5}
    results = {"bench-r101": {"name": "bench-r101", "status": "passed", "metrics": r101},
               "kernels": {"name": "kernels", "status": "passed", "metrics": kernels}}
    h = gc.headline(results)
    assert h["r101_b64_224"]["vs_baseline"] == 40.0 and h["r101_b64_224"]["fraction_of_peak"] == 0.404
    # (0.1 + 0.3) ms of kernels per frame against 2 ms per 1080p frame end to end (500 images/s)
    assert h["kernels_1080p"]["share_of_r101_end_to_end"] == pytest.approx(0.2)
    assert h["kernels_1080p_native"]["ms_per_frame"] == 1.0 and "share_of_r101_end_to_end" not in h["kernels_1080p_native"]
    native = bench_json()
    for r in native["runs"]:
        r.update(analysis="native", tiles_per_image=60 if r["input"] == "1080p" else 1)
    (tmp_path / "native.json").write_text(json.dumps(native))
    results["bench-r101-native"] = {"name": "bench-r101-native", "status": "passed",
                                    "metrics": gc.parse_bench(ctx, tmp_path / "native.json")}
    h = gc.headline(results)
    assert h["r101_native_1080p"]["tiles_per_image"] == 60
    assert h["kernels_1080p_native"]["share_of_r101_end_to_end"] == pytest.approx(0.5)  # 1 ms of 2 ms per frame
    assert h["r101_b64_224"]["vs_baseline"] == 40.0  # the fit figures come from the fit rows only
    steps = [gc.Step(n, "g", n, 0, 1, None) for n in ("bench-r101", "bench-r101-native", "kernels", "train")]
    gc.write_summary(ctx, steps, results, final=True)
    md = (ctx.out / "summary.md").read_text()
    assert "40.00× the naive eager fp32 loop" in md and "40.4 % of 989.4 TFLOP/s dense FP16 (H200 SXM" in md
    assert "preprocess_fp16 + upsample 0.400 ms/frame" in md and "20.0 % of the ResNet-101 end-to-end time" in md and "| train | pending |" in md
    assert "target GPU inference, fraction of FP16 peak >= 40%: 0.404 — met" in md
    assert "native analysis (60 tiles per image, 64 tiles per call): 500.0 images/s" in md
    assert "| native | 1080p | 64 | 500.0 |" in md


def test_a_bench_cut_off_before_its_end_still_gets_its_targets_evaluated(gc, tmp_path):
    ctx = context(gc, tmp_path)
    tree = gc.build_import_tree(tmp_path / "pythonpath")
    ctx.env.update({"PYTHONPATH": str(tree), "PYTHONSAFEPATH": "1"})
    (tmp_path / "bench.json").write_text(json.dumps(bench_json(targets=False)))
    parsed = gc.parse_bench(ctx, tmp_path / "bench.json")
    assert parsed["complete"] is False
    by_name = {t["target"]: t for t in parsed["targets"]}
    assert by_name["GPU inference, fraction of FP16 peak"]["met"] is True
    assert by_name["GPU speed-up over the naive baseline, direct224"]["measured"] == 40.0


def test_pytest_results_are_read_from_junit_or_from_the_log_of_a_cut_off_run(gc, tmp_path):
    (tmp_path / "j.xml").write_text(
        '<testsuites><testsuite name="pytest"><testcase classname="tests.a" name="t1"/>'
        '<testcase classname="tests.a" name="t2"><failure message="boom">x</failure></testcase>'
        '<testcase classname="tests.b" name="t3"><skipped message="no CUDA">y</skipped></testcase></testsuite></testsuites>')
    j = gc.parse_junit(tmp_path / "j.xml")
    assert (j["tests"], j["passed"], j["failed"], j["skipped"]) == (3, 1, 1, 1)
    assert j["failures"] == [{"test": "tests.a::t2", "message": "boom"}] and j["skips"][0]["reason"] == "no CUDA"
    log = gc.parse_pytest_log("tests/native/test_x.py::test_a PASSED [ 10%]\n"
                              "tests/native/test_x.py::test_b[fp16] FAILED [ 20%]\n")
    assert (log["tests"], log["passed"], log["failed"]) == (2, 1, 1)


# ---------------------------------------------------------------------------- the pieces


def test_the_import_tree_maps_every_package_of_setup_py(gc, tmp_path):
    tree = gc.build_import_tree(tmp_path / "pythonpath")
    for name, folder in gc.package_roots().items():
        path = tree / Path(*name.split("."))
        assert (path / "__init__.py").resolve() == (REPO / folder / "__init__.py").resolve()


def test_the_native_build_tries_cmake_then_nvcc_with_the_same_flags(gc, tmp_path, monkeypatch):
    monkeypatch.setattr(gc.shutil, "which", lambda name: f"/usr/bin/{name}")
    (how, (configure, build)), (how2, (argv,)) = gc.native_build_plans(tmp_path, "90")
    assert (how, how2) == ("cmake", "nvcc") and "-DCMAKE_CUDA_ARCHITECTURES=90-real" in configure
    monkeypatch.setattr(gc.shutil, "which", lambda name: None if name == "cmake" else f"/usr/bin/{name}")
    ((how, (argv,)),) = gc.native_build_plans(tmp_path, "90")
    assert argv[0] == "nvcc" and "-arch=sm_90" in argv and "--fmad=false" in argv and "static" in argv
    assert all((REPO / "native" / "src" / f).as_posix() in argv for f in ("status.cpp", "cpu.cpp", "cuda.cu"))


def test_train_default_model_runs_the_given_cli_instead_of_installing(tmp_path):
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "train-default-model"
    script.write_bytes((REPO / "scripts" / "train-default-model").read_bytes())
    script.chmod(0o755)
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "fake-cli"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    done = subprocess.run([str(script)], env={**os.environ, "DEVICE": "cuda", "FAKELOCATOR_CLI": f"{fake}"},
                          capture_output=True, text=True, timeout=60)
    lines = calls.read_text().splitlines()
    assert lines[0] == "train --config configs/default_model.yaml --device cuda"
    assert any(line.startswith("export onnx runs/") for line in lines)
    assert not (tmp_path / ".venv").exists()
    assert done.returncode != 0 and "model.safetensors" in done.stderr  # the fake trained nothing to install
