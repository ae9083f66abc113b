"""`fakelocator export …`: help without heavy imports, one-line errors, the check report."""

import subprocess
import sys

import pytest

from fakelocator.cli import main


def run(capsys, *argv):
    code = main(["export", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_of_every_subcommand_imports_neither_torch_nor_tensorrt():
    code = (
        "import sys\n"
        "from fakelocator.cli import main\n"
        "for what in ('onnx', 'engine', 'triton', 'check'):\n"
        "    try:\n"
        "        main(['export', what, '--help'])\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        "heavy = [m for m in ('torch', 'tensorrt', 'onnx', 'onnxruntime') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--batch-range" in result.stdout and "--repo" in result.stdout and "--against" in result.stdout


def test_the_export_package_and_the_tensorrt_backend_import_without_torch_or_tensorrt():
    code = (
        "import sys\n"
        "import fakelocator.export, fakelocator.export.engine_spec, fakelocator.export.tensorrt_build\n"
        "import fakelocator.export.parity, fakelocator.export.triton, fakelocator.metadata\n"
        "import fakelocator.export.fp16, fakelocator.export.onnx_file, fakelocator.export.onnx_export\n"
        "import fakelocator.runtime.backends.tensorrt\n"
        "heavy = [m for m in ('torch', 'tensorrt', 'cuda', 'onnx', 'onnxruntime') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_engine_without_tensorrt_is_one_line_with_the_install_command(capsys, fp32_export, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    code, out, err = run(capsys, "engine", str(fp32_export.path))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "TensorRT is not installed" in err and "pip install tensorrt" in err


def test_bad_engine_options_are_reported_before_tensorrt_is_needed(capsys, fp32_export, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    code, _, err = run(capsys, "engine", str(fp32_export.path), "--batch-range", "8,4,2")
    assert code == 2 and "--batch-range '8,4,2'" in err


def test_engine_through_the_cli_with_fake_tensorrt(capsys, fake_trt, fp32_export, tmp_path):
    """API-contract test: the CLI wiring, with the fake TensorRT of tests/helpers/fake_tensorrt.py; the parity step runs the fake engine."""
    engine = tmp_path / "m.engine"
    code, out, _ = run(capsys, "engine", str(fp32_export.path), "-o", str(engine), "--batch-range", "1,2,4", "--no-check",
                       "--device", "cuda:0")
    assert code == 0 and engine.is_file() and (tmp_path / "m.engine.json").is_file()
    assert "fp32, image: min 1x3x64x64, opt 2x3x64x64, max 4x3x64x64" in out
    code, out, _ = run(capsys, "check", str(engine), "--device", "0")
    assert code == 0 and "built with TensorRT 10.16.1.11 on NVIDIA Fake GPU (sm_89)" in out and "tensors:" in out


def test_device_takes_an_index_or_cuda_n_in_engine_and_check():
    from fakelocator.commands.export import gpu_index

    assert gpu_index("0") == gpu_index("cuda:0") == gpu_index("cuda") == gpu_index("auto") == 0 and gpu_index("CUDA:3") == 3
    for what in ("engine", "check"):
        for device in ("gpu1", "cpu"):  # TensorRT: GPUs only
            with pytest.raises(SystemExit) as e:
                main(["export", what, "model.onnx", "--device", device])
            assert e.value.code == 2


def test_check_prints_structure_metadata_and_parity_against_the_checkpoint(capsys, fp32_export, tiny_checkpoint):
    code, out, _ = run(capsys, "check", str(fp32_export.path), "--against", str(tiny_checkpoint))
    assert code == 0
    for text in ("opset 18", "image: float32 (batch, 3, 64, 64)", "map: float32 (batch, 1, 64, 64)",
                 "fakelocator.preprocessing:", "fakelocator.precision: fp32",
                 "parity: onnxruntime (model.onnx) vs pytorch (tiny_trained.safetensors) (bounds fp32", "PASS"):
        assert text in out, text


def test_check_without_a_reference_compares_batched_with_one_at_a_time(capsys, dynamic_export):
    code, out, _ = run(capsys, "check", str(dynamic_export.path))
    assert code == 0 and "one image at a time" in out and "at 80x112" in out


def test_check_fp16_against_fp32_uses_the_fp16_bounds_and_fails_tight_ones(capsys, fp16_export, fp32_export):
    code, out, _ = run(capsys, "check", str(fp16_export.path), "--against", str(fp32_export.path))
    assert code == 0 and "bounds fp16" in out
    code, out, _ = run(capsys, "check", str(fp16_export.path), "--against", str(fp32_export.path), "--max-abs", "1e-6")
    assert code == 1 and "FAIL" in out


def test_onnx_command_exports_and_converts(capsys, tiny_checkpoint, tmp_path):
    out_path = tmp_path / "cli.onnx"
    code, out, _ = run(capsys, "onnx", str(tiny_checkpoint), "-o", str(out_path), "--exporter", "legacy")
    assert code == 0 and out.startswith(f"wrote {out_path}") and "PASS" in out
    code, out, _ = run(capsys, "onnx", str(out_path), "--fp16")
    assert code == 0 and (tmp_path / "cli.fp16.onnx").is_file() and "bounds fp16" in out and "PASS" in out
    code, _, err = run(capsys, "onnx", str(out_path))
    assert code == 2 and "already ONNX" in err


def test_triton_command_writes_a_repository(capsys, fp32_export, tmp_path):
    code, out, _ = run(capsys, "triton", str(fp32_export.path), "--repo", str(tmp_path), "--preferred", "4,8", "--gpus", "0")
    assert code == 0 and (tmp_path / "fakelocator" / "config.pbtxt").is_file() and "fakelocator serve" in out
    assert (tmp_path / "fakelocator_model" / "1" / "model.onnx").is_file()
    code, _, err = run(capsys, "triton", str(fp32_export.path), "--repo", str(tmp_path), "--gpus", "a")
    assert code == 2 and "--gpus 'a'" in err


@pytest.mark.parametrize("argv, message", [(["check", "model.txt"], "takes an .onnx or an engine"),
                                           (["check", "missing.onnx"], "no such file"),
                                           (["check", "missing.engine"], "engine missing.engine: no such file")])
def test_check_errors_are_one_line(capsys, tmp_path, argv, message):
    (tmp_path / "model.txt").write_text("x")
    argv = [str(tmp_path / a) if "." in a else a for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2 and message.replace("missing.engine", str(tmp_path / "missing.engine")) in err
    assert len(err.strip().splitlines()) == 1 and "sidecar" not in err  # the engine is missing, not its sidecar


def _runtime_only(code: str, cwd) -> subprocess.CompletedProcess:
    """``code`` in a Python where torch, torchvision and onnx cannot be imported (a runtime-only install)."""
    blocker = (
        "import sys\n"
        "for name in ('torch', 'torchvision', 'onnx', 'onnxscript', 'safetensors', 'facexlib'):\n"
        "    sys.modules[name] = None\n"
    )
    return subprocess.run([sys.executable, "-c", blocker + code], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.parametrize("argv", [
    ["train", "--data", "d", "--out", "o"],
    ["export", "onnx", "model.safetensors", "-o", "m.onnx"],
    ["export", "check", "model.onnx"],
    ["synth", "out", "--n", "2"],
])
def test_training_commands_in_a_runtime_only_install_are_one_line_naming_the_extra(tmp_path, argv):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    (tmp_path / "model.onnx").write_bytes(b"x")
    (tmp_path / "d").mkdir()
    result = _runtime_only(f"from fakelocator.cli import main\nraise SystemExit(main({argv!r}))\n", tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "pip install 'fakelocator[train]'" in lines[0] and "is not installed" in lines[0]


def test_export_never_writes_into_the_installed_package(capsys, tmp_path):
    from fakelocator.commands.export import package_folder

    shipped = package_folder() / "weights" / "default" / "model.safetensors"
    onnx = shipped.with_suffix(".onnx")
    before = onnx.stat().st_mtime_ns if onnx.exists() else None
    code, _, err = run(capsys, "onnx", str(shipped))
    assert code == 2 and "inside the installed fakelocator package" in err and "-o PATH" in err
    code, _, err = run(capsys, "onnx", str(tmp_path / "x.safetensors"), "-o", str(package_folder() / "x.onnx"))
    assert code == 2 and "inside the installed fakelocator package" in err
    assert (onnx.stat().st_mtime_ns if onnx.exists() else None) == before
    assert not (package_folder() / "x.onnx").exists()


def test_export_refuses_to_overwrite_without_overwrite(capsys, tiny_checkpoint, tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"precious")
    code, _, err = run(capsys, "onnx", str(tiny_checkpoint), "-o", str(target))
    assert code == 2 and "m.onnx exists: pass --overwrite" in err
    assert target.read_bytes() == b"precious"
    code, _, err = run(capsys, "onnx", str(tiny_checkpoint), "-o", str(target), "--overwrite", "--no-check")
    assert code == 0, err
    assert target.read_bytes() != b"precious"
    engine = tmp_path / "m.engine.json"
    engine.write_text("{}")
    code, _, err = run(capsys, "engine", str(target), "-o", str(tmp_path / "m.engine"))
    assert code == 2 and "m.engine.json exists: pass --overwrite" in err
