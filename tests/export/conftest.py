"""Fixtures of the export tests.

Exports are the slow part (several seconds each on 2 CPU cores), so the exported files are made once
per session and shared: a static fp32 export, a dynamic-H/W fp32 export and a static fp16 export of
``data/tiny_trained.safetensors`` (a tiny network trained on synthetic data by
``data/make_tiny_trained.py``; fp16 bounds only mean something on trained weights).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import fake_cuda, fake_tensorrt

DATA = Path(__file__).with_name("data")
TINY = DATA / "tiny_trained.safetensors"


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
def fake_device(monkeypatch) -> fake_cuda.FakeDevice:
    """A fresh fake CUDA device installed as ``fakelocator.runtime.cuda`` (tests/helpers/fake_cuda.py)."""
    return fake_cuda.install(monkeypatch)


@pytest.fixture
def fake_trt(fake_device, monkeypatch):
    """A fake ``tensorrt`` 10.16 (tests/helpers/fake_tensorrt.py) on the fake device; returns (trt, state, device)."""
    trt, state = fake_tensorrt.install(monkeypatch, device=fake_device)
    return trt, state, fake_device


@pytest.fixture
def install(fake_device, monkeypatch):
    """``install(version)`` installs a fake TensorRT of another version (e.g. "11.1.0.5") on the same device."""
    return lambda version: (*fake_tensorrt.install(monkeypatch, version, device=fake_device), fake_device)
