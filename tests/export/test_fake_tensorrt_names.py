"""The fake ``tensorrt`` (tests/helpers/fake_tensorrt.py) and fakelocator's TensorRT code use only
names that the real bindings have, in TensorRT 10 and in 11.

The real bindings wheels come from PyPI (tests/helpers/tensorrt_wheels.py: fetched once into a
cache folder, never imported); without network the tests skip with the reason. What they cannot
check: enum values and signatures (not in the binary's strings); those follow NvInfer.h and are
exercised by the ``needs_tensorrt`` tests on a GPU machine.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path

import pytest

from fakelocator.runtime.engine_sidecar import HARDWARE_LEVELS
from helpers import fake_tensorrt, tensorrt_wheels

REPO = Path(__file__).resolve().parents[2]
#: The modules that call TensorRT.
TENSORRT_CODE = ("export/tensorrt_build.py", "runtime/backends/tensorrt.py", "runtime/tensorrt_lib.py")
#: Names of the fake that are its own bookkeeping, not TensorRT's.
FAKE_ONLY = {"state", "FAKE_CLASSES", "executions"}
#: Names fakelocator uses only where the version has them, behind a check (``hasattr(trt.BuilderFlag, "FP16")``).
TENSORRT_10_ONLY = {"FP16", "EXPLICIT_BATCH"}


@pytest.fixture(scope="module")
def real():
    """{"10": Bindings, "11": Bindings, "10.8": ..., "10.9": ...}, or a skip saying why not."""
    found = {}
    for label in tensorrt_wheels.WHEELS:
        try:
            found[label] = tensorrt_wheels.Bindings.read(tensorrt_wheels.fetch(label))
        except RuntimeError as e:
            pytest.skip(f"the real TensorRT bindings wheels cannot be fetched from PyPI: {e}")
    return found


def fake_names(version: str) -> set[str]:
    """Every public name the fake TensorRT of ``version`` defines: module attributes, enum members, methods and properties."""
    trt, _ = fake_tensorrt.make_tensorrt(version)
    names = {n for n in vars(trt) if not n.startswith("_")}
    for value in vars(trt).values():
        if isinstance(value, type) and issubclass(value, enum.Enum):
            names |= set(value.__members__)
    for cls in trt.FAKE_CLASSES:
        names |= {n for n in vars(cls) if not n.startswith("_")}
    names.add("engine_host_code_allowed")  # an instance attribute of the fake Runtime
    return names - FAKE_ONLY - {"Tensor"}  # Tensor: the fake's name for ITensor, never referred to by name


def project_names() -> set[str]:
    """``trt.X`` and ``trt.X.Y`` in fakelocator's TensorRT code, and the hardware levels it looks up by name."""
    names = set()
    for path in TENSORRT_CODE:
        for first, second in re.findall(r"\btrt\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?", (REPO / path).read_text()):
            names |= {first, second} - {""}
    names |= {level.upper() for level in HARDWARE_LEVELS}
    names.discard("__version__")  # a module attribute every Python package has
    return names


def test_the_project_refers_to_tensorrt_names():
    names = project_names()
    assert {"Builder", "OnnxParser", "Runtime", "BuilderFlag", "STRONGLY_TYPED", "SAME_COMPUTE_CAPABILITY", "nptype"} <= names


@pytest.mark.parametrize("version, label", [("10.16.1.11", "10"), ("11.4.0.106", "11")])
def test_every_name_of_the_fake_exists_in_that_tensorrt(real, version, label):
    missing = sorted(n for n in fake_names(version) if not real[label].has(n))
    assert not missing, f"the fake TensorRT {version} has names the real {real[label].version} bindings lack: {missing}"


@pytest.mark.parametrize("label", ["10", "11"])
def test_every_name_fakelocator_uses_exists_in_both_majors(real, label):
    names = project_names() - (TENSORRT_10_ONLY if label == "11" else set())
    missing = sorted(n for n in names if not real[label].has(n))
    assert not missing, f"fakelocator uses TensorRT names that {real[label].version} lacks: {missing}"


def test_the_version_dependent_names_are_where_the_fake_says(real):
    assert all(real["10"].has(n) for n in TENSORRT_10_ONLY)
    assert not real["11"].has("FP16"), "TensorRT 11 has no BuilderFlag.FP16 (weak typing removed)"
    assert "FP16" not in fake_names("11.4.0.106") and "FP16" in fake_names("10.16.1.11")
    # SAME_COMPUTE_CAPABILITY first appears in 10.9; the fake follows (and the builder's error says so).
    assert not real["10.8"].has("SAME_COMPUTE_CAPABILITY") and real["10.9"].has("SAME_COMPUTE_CAPABILITY")
    assert "SAME_COMPUTE_CAPABILITY" not in fake_names("10.8.0.43") and "SAME_COMPUTE_CAPABILITY" in fake_names("10.9.0.34")


def test_a_name_nobody_defines_is_not_found(real):
    assert not real["10"].has("execute_async_v4") and real["10"].has("execute_async_v3")
    assert real["11"].has("num_errors")  # stored as the tail of get_num_errors
