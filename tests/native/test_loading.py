"""How the runtime finds the native library, and what happens when it cannot."""

import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError
from fakelocator.runtime import native
from helpers.native_build import cuda_device_count, forget_loaded_library

HEADER = Path(__file__).resolve().parents[2] / "native" / "include" / "fakelocator_native.h"


@pytest.fixture
def fresh_loader(monkeypatch):
    """load() forgets its cached result before and after the test."""
    forget_loaded_library()
    yield monkeypatch
    forget_loaded_library()


def test_python_and_c_agree_on_the_abi_version_and_size_limit(lib):
    text = HEADER.read_text()
    assert int(re.search(r"#define FL_ABI_VERSION (\d+)", text).group(1)) == native.ABI_VERSION
    assert int(re.search(r"#define FL_MAX_SIDE (\d+)", text).group(1)) == native.MAX_SIDE
    assert lib._lib.fl_abi_version() == native.ABI_VERSION


def test_the_environment_variable_names_the_library(fresh_loader, native_path, caplog):
    fresh_loader.setenv(native.LIBRARY_ENV, str(native_path))
    loaded = native.load()
    assert loaded is not None and loaded.path == native_path
    assert native.load() is loaded and native.require() is loaded


def test_the_repository_build_is_found_without_the_variable(fresh_loader, native_path):
    fresh_loader.delenv(native.LIBRARY_ENV, raising=False)
    if native_path.parent != native.candidate_paths()[1].parent:
        pytest.skip(f"the library under test is not <repo>/build ({native_path})")
    assert native.load().path == native_path


def test_off_disables_the_library_and_says_so_once(fresh_loader, caplog):
    fresh_loader.setenv(native.LIBRARY_ENV, "off")
    with caplog.at_level(logging.INFO, logger="fakelocator"):
        assert native.load() is None
        assert native.load() is None
    messages = [r.getMessage() for r in caplog.records if "native" in r.getMessage()]
    assert len(messages) == 1 and "falls back to OpenCV" in messages[0] and "off" in messages[0]
    with pytest.raises(FakeLocatorError, match="unavailable: disabled"):
        native.require()


def test_a_missing_or_broken_library_falls_back_with_the_reason(fresh_loader, tmp_path):
    fresh_loader.setenv(native.LIBRARY_ENV, str(tmp_path / "nowhere.so"))
    assert native.load() is None
    with pytest.raises(FakeLocatorError, match="nowhere.so, which does not exist"):
        native.require()
    forget_loaded_library()
    broken = tmp_path / "libfakelocator_native.so"
    broken.write_bytes(b"not a shared library")
    fresh_loader.setenv(native.LIBRARY_ENV, str(broken))
    assert native.load() is None
    with pytest.raises(FakeLocatorError, match="cannot load"):
        native.require()


def test_importing_the_module_loads_nothing():
    code = (
        "import sys, fakelocator.runtime.native as n, fakelocator.runtime.cuda; "
        "assert n._loaded is None and n._unavailable is None; "
        "assert not any(m.startswith('cuda') for m in sys.modules), [m for m in sys.modules if m.startswith('cuda')]; "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gpu_entry_points_explain_why_they_cannot_run_here(lib):
    """Without a driver (this CI) or without CUDA compiled in, the GPU path fails with a clear reason."""
    try:
        if lib.has_cuda and cuda_device_count(lib) > 0:
            pytest.skip("a GPU is present: the CUDA path is tested by test_cuda_kernels.py")
    except FakeLocatorError:
        pass  # no driver: what this test is about
    expected = r"cuda(Error\w+|GetDeviceCount)|driver" if lib.has_cuda else "built without CUDA"
    with pytest.raises(FakeLocatorError, match=expected):
        lib.preprocess_device([native.DeviceImage(1 << 20, 8, 8)], "RGB", Preprocessing(), 1 << 21)
    with pytest.raises(FakeLocatorError, match=expected):
        lib.upsample_device(1 << 20, (4, 4), [(8, 8)], [1 << 21])


def test_device_arguments_are_checked_before_anything_runs(lib):
    with pytest.raises(FakeLocatorError, match="not a device pointer"):
        lib.preprocess_device([native.DeviceImage(0, 8, 8)], "RGB", Preprocessing(), 1 << 21)
    with pytest.raises(FakeLocatorError, match="row pitch 10 is smaller"):
        lib.preprocess_device([native.DeviceImage(1 << 20, 8, 8, pitch=10)], "RGB", Preprocessing(), 1 << 21)
    with pytest.raises(FakeLocatorError, match="float32 or float16"):
        lib.preprocess_device([], "RGB", Preprocessing(), 1 << 21, dtype=np.uint8)
    with pytest.raises(FakeLocatorError, match="overlays need both"):
        lib.postprocess_device(1 << 20, (4, 4), [(8, 8)], maps_out=[1 << 21], images=[native.DeviceImage(1 << 22, 8, 8)])
    with pytest.raises(FakeLocatorError, match="is 8x9 but its size is 8x8"):
        lib.postprocess_device(
            1 << 20, (4, 4), [(8, 8)], images=[native.DeviceImage(1 << 22, 8, 9)], overlays_out=[1 << 23], lut=np.zeros((256, 3), np.uint8)
        )


@pytest.mark.slow  # a second build: about 10 s on 2 cores
def test_a_cpu_only_build_works_and_says_it_has_no_cuda(cpu_only_build, rng):
    cpu_only = native.NativeLibrary(cpu_only_build / native.library_filename())
    assert not cpu_only.has_cuda
    image = rng.integers(0, 256, size=(50, 70, 3), dtype=np.uint8)
    contract = Preprocessing(height=32, width=32)
    assert cpu_only.preprocess([image], "RGB", contract).shape == (1, 3, 32, 32)
    with pytest.raises(FakeLocatorError, match="built without CUDA.*rebuild on a machine with the CUDA toolkit"):
        cpu_only.preprocess_device([native.DeviceImage(1 << 20, 8, 8)], "RGB", contract, 1 << 21)


def test_a_broken_library_is_a_warning_a_missing_one_only_information(fresh_loader, tmp_path, caplog):
    broken = tmp_path / "libfakelocator_native.so"
    broken.write_bytes(b"not a shared library")
    fresh_loader.setenv(native.LIBRARY_ENV, str(broken))
    with caplog.at_level(logging.INFO, logger="fakelocator"):
        native.load()
        forget_loaded_library()
        fresh_loader.setenv(native.LIBRARY_ENV, "off")
        native.load()
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]
