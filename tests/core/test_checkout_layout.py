"""The checkout is the package: Python started in the repository root imports ``fakelocator.runtime``
from the checkout's own files (no PYTHONPATH, whatever copy is installed), and packaging finds every
sub-package through ``fakelocator/<part> -> ../<part>`` links, so a wheel holds their files."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PARTS = ("runtime", "training", "export", "evaluation", "benchmarks")


def test_python_in_the_repository_root_imports_the_checkouts_runtime():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    code = ("import fakelocator.runtime as r\nfrom fakelocator.runtime import Locator\n"
            "import fakelocator.training, fakelocator.export, fakelocator.evaluation, fakelocator.benchmarks\n"
            "print(r.__file__)")
    # -s: no user site; the environment's site-packages stay (numpy, OpenCV), with whatever fakelocator
    # is installed there, editable or not: the root's own folder must win, whole
    out = subprocess.run([sys.executable, "-s", "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).resolve() == REPO / "runtime" / "__init__.py"


def test_the_package_links_are_relative_and_point_at_the_top_level_folders():
    for part in PARTS:
        link = REPO / "fakelocator" / part
        assert link.is_symlink() and os.readlink(link) == f"../{part}", part
        assert (link / "__init__.py").is_file()


def test_packaging_finds_every_sub_package_through_the_links():
    from setuptools import find_packages

    found = set(find_packages(where=str(REPO), include=["fakelocator", "fakelocator.*"]))
    on_disk = {".".join(("fakelocator", part, *init.parent.relative_to(REPO / part).parts))
               for part in PARTS for init in (REPO / part).rglob("__init__.py")}
    assert {"fakelocator", "fakelocator.runtime", "fakelocator.runtime.backends"} <= found
    assert on_disk <= found, sorted(on_disk - found)
