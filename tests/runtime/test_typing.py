"""The runtime's public classes carry complete type information (PEP 561): ``py.typed`` ships, and no
public signature or field of Locator, LocateResult, FrameResult, VideoSummary, VideoResults or Face
is untyped or ``Any``."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path

import pytest

from fakelocator.runtime.faces import FaceOptions
from fakelocator.runtime.locator import Locator
from fakelocator.runtime.regions import RegionProvider
from fakelocator.runtime.results import Face, FrameResult, LocateResult, VideoSummary
from fakelocator.runtime.video import VideoResults

ROOT = Path(__file__).parents[2]
PUBLIC = (Locator, LocateResult, FrameResult, VideoSummary, VideoResults, Face)


def test_py_typed_ships_with_the_package():
    assert (ROOT / "fakelocator" / "py.typed").is_file()
    assert '"py.typed"' in (ROOT / "pyproject.toml").read_text(), "py.typed must be package data"


def _mentions_any(hint) -> bool:
    if hint is typing.Any:
        return True
    return any(_mentions_any(arg) for arg in typing.get_args(hint))


def _members(cls):
    for name, member in vars(cls).items():
        if name.startswith("_") and name not in ("__init__", "__iter__", "__enter__", "__exit__"):
            continue
        if isinstance(member, property):
            yield f"{cls.__name__}.{name}", member.fget
        elif isinstance(member, (staticmethod, classmethod)):
            yield f"{cls.__name__}.{name}", member.__func__
        elif inspect.isfunction(member):
            yield f"{cls.__name__}.{name}", member


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda c: c.__name__)
def test_public_signatures_are_fully_typed_without_any(cls):
    namespace = {"FaceOptions": FaceOptions, "RegionProvider": RegionProvider, "Locator": Locator}
    problems = []
    for name, fn in _members(cls):
        if dataclasses.is_dataclass(cls) and fn.__name__ in ("__init__", "__eq__", "__repr__"):
            continue  # generated from the fields, checked below
        hints = typing.get_type_hints(fn, localns=namespace)
        for param in inspect.signature(fn).parameters.values():
            if param.name not in ("self", "cls") and param.name not in hints:
                problems.append(f"{name}({param.name}) has no annotation")
        if "return" not in hints:
            problems.append(f"{name} has no return annotation")
        problems += [f"{name}: {k} is Any" for k, v in hints.items() if _mentions_any(v)]
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls, localns=namespace)
        problems += [f"{cls.__name__}.{k} is Any" for k, v in hints.items() if _mentions_any(v)]
        problems += [f"{cls.__name__}.{k} is a bare tuple" for k, v in hints.items() if v is tuple]
    assert not problems, problems
