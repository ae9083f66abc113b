"""`fakelocator bench`: a thin CLI over the library; and the benchmark without torch (the runtime extra only)."""

import json
import subprocess
import sys
import textwrap

from fakelocator.cli import main


def test_help_lists_the_options(capsys):
    try:
        main(["bench", "--help"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    for option in ("--model", "--backend", "--batch", "--inputs", "--iterations", "--warmup", "--no-baseline", "--memory-run",
                   "--out", "--device"):
        assert option in out


def test_runs_and_writes_its_results_only_under_out(mean_model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results"
    code = main(["bench", "--model", str(mean_model), "--batch", "1,2", "--inputs", "direct224", "--iterations", "2",
                 "--min-images", "0", "--warmup", "1", "--no-baseline", "--memory-run", "0", "--pool", "2", "--device", "cpu", "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # nothing in the current folder
    assert {"bench.json", "bench.md", "bench.png"} <= {p.name for p in out.iterdir()}
    captured = capsys.readouterr()
    assert "| direct224 | onnxruntime | fp32 | cpu | fit | 1 |" in captured.out  # the table on stdout
    assert "bench: " in captured.err  # progress on stderr
    data = json.loads((out / "bench.json").read_text())
    assert [r["batch"] for r in data["runs"]] == [1, 2] and data["baseline"] is None and data["memory"] is None


def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys):
    code = main(["bench", "--model", str(tmp_path / "missing.onnx"), "--out", str(tmp_path / "o"), "--no-baseline"])
    err = capsys.readouterr().err
    assert code == 2 and "missing.onnx" in err and "Traceback" not in err
    code = main(["bench", "--untrained", "unet_lite", "--model", "x.onnx", "--out", str(tmp_path / "o")])
    assert code == 2 and "either --model or --untrained" in capsys.readouterr().err


# None in sys.modules: `import torch` fails and importlib.util.find_spec("torch") says it is not installed.
BLOCK_TORCH = textwrap.dedent(
    """
    import sys

    for name in ("torch", "torchvision", "tensorrt"):
        sys.modules[name] = None
    """
)


def test_runs_without_torch_and_says_the_baseline_is_skipped(mean_model, tmp_path):
    code = BLOCK_TORCH + textwrap.dedent(
        f"""
        import importlib, pkgutil
        import fakelocator.benchmarks as b
        for m in pkgutil.walk_packages(b.__path__, "fakelocator.benchmarks."):
            importlib.import_module(m.name)
        from fakelocator.cli import main
        code = main(["bench", "--model", {str(mean_model)!r}, "--batch", "2", "--inputs", "crop256", "--iterations", "1", "--min-images", "0",
                     "--warmup", "0", "--memory-run", "10", "--memory-input", "crop256", "--pool", "1", "--out", {str(tmp_path)!r}])
        assert code == 0, code
        assert not [m for m, v in sys.modules.items() if m.split(".")[0] in ("torch", "torchvision") and v is not None]
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "bench.json").read_text())
    assert "torch is not installed" in data["baseline"]["skipped"]
    assert data["runs"][0]["vs_baseline"] is None and data["memory"]["images"] == 10
    assert "baseline: skipped" in result.stderr
