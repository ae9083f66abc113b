"""ONNX Runtime session options the backend sets: no spin-waiting unless asked for."""

import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime.backends import load_backend


def _spinning(backend) -> str:
    return backend.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")


def test_intra_op_threads_do_not_spin_by_default(red_model):
    """Spinning threads take the cores the pipeline's decoding threads need (docs/benchmarks.md)."""
    with load_backend(red_model, "onnxruntime", device="cpu") as backend:
        assert _spinning(backend) == "0"


def test_spinning_can_be_asked_for(red_model):
    with load_backend(red_model, "onnxruntime", device="cpu", spinning=True, threads=1) as backend:
        assert _spinning(backend) == "1"
        assert backend.session.get_session_options().intra_op_num_threads == 1


def test_unknown_options_are_named(red_model):
    with pytest.raises(FakeLocatorError, match="threads, spinning"):
        load_backend(red_model, "onnxruntime", device="cpu", spin=True)
