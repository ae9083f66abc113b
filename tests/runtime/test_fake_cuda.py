"""The fake CUDA device (tests/helpers/fake_cuda.py) stands in for ``fakelocator.runtime.cuda``:
every public name of the real module is in the fake, with the same parameters, and the fake's
failures are the real module's exception class (a ``FakeLocatorError``, which the GPU path's
fallbacks catch). The way tests/export/test_fake_tensorrt_names.py holds the fake TensorRT to the
real bindings."""

from __future__ import annotations

import inspect
import types

import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime import cuda as real
from helpers import fake_cuda


def public(module: types.ModuleType) -> dict[str, object]:
    return {name: value for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", module.__name__) == module.__name__
            and not isinstance(value, types.ModuleType) and name != "annotations"}


def parameters(fn) -> list[tuple[str, object, object]]:
    """(name, kind, default) of each parameter; annotations are the real module's documentation only."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def methods(cls) -> dict[str, object]:
    return {name: fn for name, fn in inspect.getmembers(cls, callable)
            if not name.startswith("_") or name in ("__init__", "__enter__", "__exit__")}


@pytest.fixture(scope="module")
def fake() -> types.ModuleType:
    return fake_cuda.FakeDevice().module


def test_the_fake_has_every_public_name_of_the_real_module(fake):
    missing = sorted(set(public(real)) - set(vars(fake)))
    assert not missing, f"fake_cuda lacks {missing} of fakelocator.runtime.cuda"


@pytest.mark.parametrize("name", sorted(n for n, v in public(real).items() if inspect.isfunction(v)))
def test_functions_take_the_real_parameters(fake, name):
    assert parameters(getattr(fake, name)) == parameters(getattr(real, name))


@pytest.mark.parametrize("name", sorted(n for n, v in public(real).items() if inspect.isclass(v) and not issubclass(v, Exception)))
def test_classes_have_the_real_methods_and_parameters(fake, name):
    want, got = methods(getattr(real, name)), methods(getattr(fake, name))
    assert sorted(set(want) - set(got)) == []
    for method, fn in want.items():
        assert parameters(got[method]) == parameters(fn), f"{name}.{method}"


def test_failures_are_the_real_exception_classes(fake):
    assert fake.CudaError is real.CudaError and issubclass(fake.CudaError, FakeLocatorError)
    with pytest.raises(FakeLocatorError, match="cuda-python"):
        fake.runtime()
    assert fake.COPY_KINDS == real.COPY_KINDS
