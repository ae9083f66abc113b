"""Shared test fixtures and markers.

``needs_cuda`` and ``needs_tensorrt`` tests skip, with the reason, where the hardware or package is
missing; the base suite runs on a CPU-only machine.
"""

from __future__ import annotations

import importlib.util
import random

import numpy as np
import pytest


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    has_cuda = _cuda_available()
    has_trt = importlib.util.find_spec("tensorrt") is not None
    skip_cuda = pytest.mark.skip(reason="needs an NVIDIA GPU with a CUDA driver; none on this machine")
    skip_trt = pytest.mark.skip(
        reason="needs the tensorrt package and a GPU; TensorRT installs only from NVIDIA's index, "
        "which this environment cannot reach"
    )
    for item in items:
        if "needs_cuda" in item.keywords and not has_cuda:
            item.add_marker(skip_cuda)
        if "needs_tensorrt" in item.keywords and not (has_trt and has_cuda):
            item.add_marker(skip_trt)


@pytest.fixture(autouse=True)
def _restore_rng_state():
    """Every test starts from, and leaves behind, the same global RNG state."""
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        import torch

        torch_state = torch.get_rng_state()
    except ImportError:
        torch_state = None
    yield
    random.setstate(py_state)
    np.random.set_state(np_state)
    if torch_state is not None:
        torch.set_rng_state(torch_state)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


#: The seed of the tests that train (marker ``trains``): 0 by default; ``.ci/run`` reruns those tests
#: with another seed on another CPU instruction set, because what they assert must hold for any.
TRAIN_SEED_ENV = "FAKELOCATOR_TEST_SEED"


@pytest.fixture(scope="session")
def train_seed() -> int:
    """The seed for a test that trains: ``$FAKELOCATOR_TEST_SEED``, default 0."""
    import os

    return int(os.environ.get(TRAIN_SEED_ENV, "0"))
