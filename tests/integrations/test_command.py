"""``fakelocator batch`` without Ray: its help, and the one line that says which extra to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCK_RAY = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "ray":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Block())
    from fakelocator.cli import main
    """
)


def run(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_RAY + textwrap.dedent(code)], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_help_works_without_ray(tmp_path):
    result = run("main(['batch', '--help'])", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "INPUT_URI" in result.stdout and "--ray ADDRESS" in result.stdout and "resumes" in result.stdout


def test_without_ray_one_line_names_the_extra(tmp_path):
    result = run("sys.exit(main(['batch', 'in', '--out', 'out']))", tmp_path)
    assert result.returncode == 2
    assert "pip install 'fakelocator[ray]'" in result.stderr and "Traceback" not in result.stderr
