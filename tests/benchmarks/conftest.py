"""Fixtures of the benchmark tests: tiny models and a fake clock.

These tests check the benchmark machinery (fields, warm-up, percentiles, FLOP counts, files), never
the speed of anything: a benchmark is not a test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers.models import build_mean_model

TINY_CHECKPOINT = Path(__file__).parents[1] / "export" / "data" / "tiny_trained.safetensors"  # unet_lite width 4, 64×64


class FakeClock:
    """A clock that only moves when told: ``advance(ms)``; callable like ``time.perf_counter``."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, ms: float) -> None:
        self.t += ms / 1000


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def mean_model(tmp_path_factory) -> Path:
    return build_mean_model(tmp_path_factory.mktemp("bench_mean") / "model.onnx")


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory) -> tuple[Path, Path]:
    """(model.onnx, model.safetensors): the tiny trained unet_lite and its ONNX export, side by side."""
    pytest.importorskip("torch")
    from fakelocator.export.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("bench_tiny")
    checkpoint = folder / "model.safetensors"
    shutil.copy(TINY_CHECKPOINT, checkpoint)
    export_onnx(checkpoint, folder / "model.onnx", check=False, exporter="legacy")
    return folder / "model.onnx", checkpoint
