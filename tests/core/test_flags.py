"""One meaning per flag name across every command (``fakelocator.flags``), as in ultralytics' and
Polygraphy's CLIs: every command's parser is walked, no command is run."""

from __future__ import annotations

import argparse
import importlib

import pytest

from fakelocator.cli import SUBCOMMANDS


class _Parsed(Exception):
    def __init__(self, parser):
        self.parser = parser


def _script_parser(module: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser a ``main(argv)`` builds, caught at its ``parse_args``."""

    def catch(self, *args, **kwargs):
        raise _Parsed(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    with pytest.raises(_Parsed) as caught:
        importlib.import_module(module).main([])
    monkeypatch.undo()
    return caught.value.parser


def _commands(monkeypatch) -> dict[str, argparse.ArgumentParser]:
    out = {}

    def walk(parser, name):
        out[name] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, p in action.choices.items():
                    walk(p, f"{name} {sub}")

    for s in SUBCOMMANDS:
        parser = argparse.ArgumentParser(prog=f"fakelocator {s.name}")
        importlib.import_module(s.module).add_arguments(parser)
        walk(parser, f"fakelocator {s.name}")
    from fakelocator.runtime.cli import build_parser

    out["trt-locate"] = build_parser()
    for script in ("fakelocator.benchmarks.kernels", "fakelocator.benchmarks.device_pipeline"):
        out[script] = _script_parser(script, monkeypatch)
    return out


def _options(parser) -> dict[str, argparse.Action]:
    return {o: a for a in parser._actions for o in a.option_strings if o.startswith("--")}


@pytest.fixture(scope="module")
def commands():
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _commands(monkeypatch)


def _visible(commands, flag):
    for name, parser in commands.items():
        action = _options(parser).get(flag)
        if action is not None and action.help != argparse.SUPPRESS:
            yield name, parser, action


def _parse(parser, action, value):
    """The value ``action`` stores for ``value``, or None when the parser refuses it."""
    try:
        return parser._get_values(action, [value]) if action.nargs is None else None
    except (argparse.ArgumentError, argparse.ArgumentTypeError, TypeError, ValueError):
        return None


def test_batch_is_one_number_of_network_inputs_everywhere(commands):
    found = list(_visible(commands, "--batch"))
    assert {n for n, _, _ in found} >= {"trt-locate", "fakelocator eval", "fakelocator train", "fakelocator export check"}
    for name, parser, action in found:
        assert _parse(parser, action, "8") == 8, name
        assert _parse(parser, action, "1,8") is None, f"{name}: --batch takes one number (lists are --batch-sizes)"


def test_lists_and_profiles_of_batch_sizes_have_their_own_names(commands):
    (_, parser, sizes), = _visible(commands, "--batch-sizes")
    assert _parse(parser, sizes, "1,8") == (1, 8)
    (name, _, batch_range), = _visible(commands, "--batch-range")
    assert name == "fakelocator export engine" and batch_range.metavar == "MIN,OPT,MAX"
    assert not list(_visible(commands, "--batch-size")), "train's --batch is --batch now"


def test_device_takes_auto_or_cuda_n_everywhere(commands):
    for name, parser, action in _visible(commands, "--device"):
        if name.startswith("fakelocator.benchmarks."):
            continue  # the kernel scripts choose which kernels to time: cpu, cuda or both
        assert action.metavar == "DEVICE", name
        assert _parse(parser, action, "auto") is not None and _parse(parser, action, "cuda:0") is not None, name
        assert "auto" in action.help and "cuda:N" in action.help, name


def test_out_is_an_output_folder_with_a_default_everywhere(commands):
    found = list(_visible(commands, "--out"))
    assert {n for n, _, _ in found} >= {"trt-locate", "fakelocator bench", "fakelocator eval", "fakelocator train"}
    for name, _, action in found:
        assert not action.required and action.metavar == "DIR", name
        assert "runs/" in action.help, f"{name}: --out's default is said in its help"


def test_version_prints_the_version_and_timeout_is_said_in_full(commands):
    for name, _, action in _visible(commands, "--version"):
        assert isinstance(action, argparse._VersionAction), f"{name}: --version is the program's version"
    assert list(_visible(commands, "--model-version"))
    assert not list(_visible(commands, "--timeout")), "--start-timeout (serve) and --request-timeout (bench --triton)"


def test_every_visible_option_says_what_it_does(commands):
    silent = [f"{name} {flag}" for name, parser in commands.items() for flag, action in _options(parser).items()
              if not action.help]
    assert not silent, silent


@pytest.mark.parametrize("argv, flag, dest, value", [
    (["bench", "--batch", "1,8"], "--batch-sizes", "batch_sizes", (1, 8)),
    (["train", "--batch-size", "4"], "--batch", "cfg.batch_size", 4),
    (["export", "triton", "m.onnx", "--repo", "r", "--version", "3"], "--model-version", "version", 3),
    (["export", "engine", "m.onnx", "--batch", "1,8,32"], "--batch-range", "batch_range", "1,8,32"),
    (["serve", "repo", "--timeout", "5"], "--start-timeout", "timeout", 5.0),
])
def test_old_spellings_still_work_hidden_and_warn(argv, flag, dest, value, capsys):
    from fakelocator.cli import SUBCOMMANDS

    sub = next(s for s in SUBCOMMANDS if s.name == argv[0])
    parser = argparse.ArgumentParser(prog=f"fakelocator {sub.name}")
    importlib.import_module(sub.module).add_arguments(parser)
    args = parser.parse_args(argv[1:])
    stored = {k: v for k, v in vars(args).items() if k == dest}
    assert list(stored.values()) == [value], stored
    assert f"is deprecated, use {flag}" in capsys.readouterr().err
