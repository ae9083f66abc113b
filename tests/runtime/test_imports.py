"""``fakelocator.runtime`` works without torch, tensorrt or CUDA libraries (checked in a clean subprocess)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys

    HEAVY = ("torch", "torchvision", "tensorrt", "cuda", "cupy", "pycuda")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HEAVY:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())
    """
)


def run_python(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_every_runtime_module_imports_without_heavy_packages(tmp_path):
    result = run_python(
        """
        import importlib, pkgutil
        import fakelocator.runtime as rt
        names = [m.name for m in pkgutil.walk_packages(rt.__path__, "fakelocator.runtime.")]
        for name in names:
            importlib.import_module(name)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
        assert not heavy, heavy
        print(len(names), "modules")
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[0]) >= 10


def test_no_runtime_module_imports_export_training_or_evaluation(tmp_path):
    # The layering: export, training, evaluation and integrations may use the runtime, never the reverse.
    # With those parts made unimportable, every runtime module still imports and none of them is loaded.
    result = run_python(
        """
        import importlib, importlib.abc, pkgutil

        PARTS = ("fakelocator.export", "fakelocator.training", "fakelocator.evaluation", "fakelocator.integrations")

        class BlockParts(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.startswith(PARTS):
                    raise ImportError(f"{name} is blocked in this test")
                return None

        sys.meta_path.insert(0, BlockParts())
        import fakelocator.runtime as rt
        names = [m.name for m in pkgutil.walk_packages(rt.__path__, "fakelocator.runtime.")]
        for name in names:
            importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if m.startswith(PARTS))
        assert not loaded, loaded
        assert "fakelocator.runtime.backends.tensorrt" in sys.modules
        print(len(names), "modules")
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[0]) >= 10


def test_importing_the_package_does_no_work(tmp_path):
    result = run_python(
        """
        import fakelocator.runtime
        loaded = sorted(m for m in sys.modules if m.startswith(("cv2", "onnxruntime", "fakelocator.runtime.")))
        assert loaded == [], loaded
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr


def test_trt_locate_runs_end_to_end_without_torch(tmp_path, red_model, red_square):
    import cv2

    cv2.imwrite(str(tmp_path / "x.png"), red_square(30, 40, (0, 0, 20, 20)))
    result = run_python(
        f"""
        from fakelocator.runtime.cli import main
        code = main(["x.png", "--out", "out", "--model", {str(red_model)!r}, "--overlay"])
        assert "torch" not in sys.modules
        sys.exit(code)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "maps" / "x.png").is_file()


def test_a_checkpoint_without_torch_explains_how_to_export(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\0")
    result = run_python(
        """
        import importlib.util
        real = importlib.util.find_spec
        importlib.util.find_spec = lambda name, *a: None if name == "torch" else real(name, *a)
        from fakelocator.runtime.cli import main
        sys.exit(main(["x.png", "--out", "out", "--model", "model.safetensors"]))
        """,
        tmp_path,
    )
    assert result.returncode == 2
    assert "fakelocator export onnx model.safetensors" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_works_without_heavy_packages(tmp_path):
    result = run_python(
        """
        from fakelocator.runtime.cli import main
        main(["--help"])
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "--map-depth" in result.stdout and "Exit status" in result.stdout
