"""The real TensorRT Python bindings, as names: fetched from PyPI, never imported.

NVIDIA publishes the bindings alone as small wheels (``tensorrt-cu12-bindings`` for TensorRT 10,
``tensorrt-cu13-bindings`` for 11, about 1.3 MB each). They cannot be imported without TensorRT's
libraries, but every class, enum value, method and property name they register is a C string in
``tensorrt_bindings/tensorrt.so``, so "does TensorRT X have name N" is a search for ``N\\0`` there
(the linker may store a name as the tail of a longer string, e.g. ``num_errors`` inside
``get_num_errors``, which this search also finds). ``tensorrt_bindings/__init__.py`` adds the
Python-level helpers (``nptype``, ``volume``).

``python tests/helpers/tensorrt_wheels.py`` fetches them ahead of a test run (CI may do so; the
test fetches what is missing itself and skips, with the reason, when PyPI cannot be reached).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE_ENV = "FAKELOCATOR_TEST_WHEELS"

#: label → pip requirement. The wheels are platform-specific only in their tags: one fixed platform
#: and Python version are asked for, whatever runs the tests.
WHEELS = {
    "10.8": "tensorrt-cu12-bindings>=10.8,<10.9",
    "10.9": "tensorrt-cu12-bindings>=10.9,<10.10",
    "10": "tensorrt-cu12-bindings>=10.16,<11",
    "11": "tensorrt-cu13-bindings>=11,<12",
}


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or REPO / "build" / "tensorrt-bindings")


def _matching(folder: Path, requirement: str) -> Path | None:
    name, lo, hi = re.fullmatch(r"([\w-]+)>=([\d.]+),<([\d.]+)", requirement).groups()
    prefix = name.replace("-", "_") + "-"

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in path.name[len(prefix):].split("-")[0].split(".") if p.isdigit())

    def key(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in text.split("."))

    found = [p for p in folder.glob(prefix + "*.whl") if key(lo) <= version(p) < key(hi)]
    return max(found, key=version) if found else None


def fetch(label: str, folder: Path | None = None, timeout: float = 180) -> Path:
    """The wheel for ``label`` in the cache, downloaded with pip first when missing; RuntimeError saying why not."""
    folder = folder or cache_dir()
    requirement = WHEELS[label]
    wheel = _matching(folder, requirement) if folder.is_dir() else None
    if wheel is not None:
        return wheel
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
               "--platform", "manylinux_2_28_x86_64", "--dest", str(folder), "--quiet", requirement]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"pip download {requirement!r} did not finish ({e})") from None
    wheel = _matching(folder, requirement)
    if done.returncode != 0 or wheel is None:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"pip download {requirement!r} failed: {tail}")
    return wheel


@dataclass(frozen=True)
class Bindings:
    """The names one real bindings wheel defines."""

    wheel: Path
    version: str
    binary: bytes  # tensorrt_bindings/tensorrt.so
    python: str  # tensorrt_bindings/__init__.py

    @classmethod
    def read(cls, wheel: Path) -> "Bindings":
        with zipfile.ZipFile(wheel) as z:
            binary = z.read("tensorrt_bindings/tensorrt.so")
            python = z.read("tensorrt_bindings/__init__.py").decode("utf-8", "replace")
        return cls(wheel, wheel.name.split("-")[1], binary, python)

    def has(self, name: str) -> bool:
        """Whether ``name`` is a name these bindings register (or a Python-level helper they define)."""
        if re.search(rf"^def {re.escape(name)}\(|^{re.escape(name)} = ", self.python, flags=re.MULTILINE):
            return True
        return name.encode() + b"\0" in self.binary


if __name__ == "__main__":
    for label in WHEELS:
        try:
            print(f"{label}: {fetch(label)}")
        except RuntimeError as e:
            print(f"{label}: {e}", file=sys.stderr)
