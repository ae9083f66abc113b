"""Fixtures of the export tests.

Exports are the slow part (several seconds each on 2 CPU cores), so the exported files are made once
per session and shared: a static fp32 export, a dynamic-H/W fp32 export and a static fp16 export of
``data/tiny_trained.safetensors`` (a tiny network trained on synthetic data by
``data/make_tiny_trained.py``; fp16 bounds only mean something on trained weights).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).with_name("data")
TINY = DATA / "tiny_trained.safetensors"


def _load_fake_gpu():
    name = "fakelocator_tests_fake_gpu"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("fake_gpu.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file executes
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def fake_gpu():
    """The module with the fake TensorRT and CUDA (tests/export/fake_gpu.py)."""
    return _load_fake_gpu()


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Path:
    return TINY


@pytest.fixture(scope="session")
def tiny_model():
    from fakelocator.training.checkpoint import load_model

    model, _ = load_model(TINY)
    return model


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="session")
def fp32_export(export_dir):
    from fakelocator.export.onnx_export import export_onnx

    return export_onnx(TINY, export_dir / "model.onnx")


@pytest.fixture(scope="session")
def dynamic_export(export_dir):
    from fakelocator.export.onnx_export import export_onnx

    return export_onnx(TINY, export_dir / "dynamic" / "model.onnx", dynamic_hw=True)


@pytest.fixture(scope="session")
def fp16_export(export_dir):
    from fakelocator.export.onnx_export import export_onnx

    return export_onnx(TINY, export_dir / "model.fp16.onnx", fp16=True)


@pytest.fixture
def fake_trt(fake_gpu, monkeypatch):
    """Install a fake ``tensorrt`` (10.16, with the FP16 flag) and fake CUDA helpers; returns (trt, state, cuda)."""
    return install_fakes(fake_gpu, monkeypatch)


def install_fakes(fake_gpu, monkeypatch, **tensorrt_options):
    trt, state = fake_gpu.make_tensorrt(**tensorrt_options)
    cuda, bindings = fake_gpu.make_cuda()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "fakelocator.runtime.cuda", cuda)
    for name, module in bindings.items():
        monkeypatch.setitem(sys.modules, name, module)
    return trt, state, cuda


@pytest.fixture
def install(fake_gpu, monkeypatch):
    """``install(**options)`` installs a fake TensorRT with other options, e.g. ``version="11.1.0.5", fp16_flag=False``."""
    return lambda **options: install_fakes(fake_gpu, monkeypatch, **options)
