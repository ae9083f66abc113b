"""``fakelocator``: one command, one subcommand per job.

Subcommands register here by name, a one-line summary and the module that implements them. A
module is imported only when its subcommand runs, so ``fakelocator --help`` works without torch,
and a missing optional dependency becomes one clear line instead of a traceback.

Each subcommand module provides ``add_arguments(parser)`` and ``run(args) -> int``; its docstring
is the subcommand's help.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

from fakelocator import __version__
from fakelocator.errors import FakeLocatorError


@dataclass(frozen=True)
class Subcommand:
    name: str
    summary: str
    module: str
    needs: str  # the extra that provides its dependencies, for the error message


SUBCOMMANDS = (
    Subcommand("train", "train a FakeLocator model", "fakelocator.commands.train", "train"),
    Subcommand("synth", "make (real, fake, ground truth) training data from real photos", "fakelocator.commands.synth", "train"),
    Subcommand("eval", "evaluate a model: metrics, robustness, clustering, cross tables", "fakelocator.commands.eval", "train"),
    Subcommand("export", "export ONNX, build TensorRT engines and Triton repositories", "fakelocator.commands.export", "train"),
    Subcommand("bench", "measure latency and throughput per backend and stage", "fakelocator.commands.bench", "runtime"),
    Subcommand("serve", "serve a Triton model repository (bytes in, maps and scores out)", "fakelocator.commands.serve", "serve"),
    Subcommand("batch", "maps and scores for a folder or bucket on a Ray cluster (Ray Data)", "fakelocator.commands.batch", "ray"),
)


def missing_dependency(sub: Subcommand, e: ModuleNotFoundError) -> FakeLocatorError | None:
    """The one-line error for a third-party package ``sub`` needs and that is not installed (None
    when ``e`` is about fakelocator itself, a bug rather than a missing extra)."""
    name = (e.name or "").split(".")[0]
    if not name or name == "fakelocator":
        return None
    return FakeLocatorError(
        f"`fakelocator {sub.name}` needs the Python package {name!r}, which is not installed "
        f"(a runtime-only install?): pip install 'fakelocator[{sub.needs}]'"
    )


def _load(sub: Subcommand):
    try:
        return importlib.import_module(sub.module)
    except ModuleNotFoundError as e:
        error = missing_dependency(sub, e)
        if error is None:
            raise
        raise error from None


def build_parser(sub: Subcommand | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fakelocator",
        description="Localize GAN face manipulations: train, synthesize data, evaluate, export, benchmark. "
        "Inference on images and videos is `trt-locate`.",
    )
    parser.add_argument("--version", action="version", version=f"fakelocator {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for s in SUBCOMMANDS:
        if sub is not None and s.name == sub.name:
            module = _load(s)
            p = subparsers.add_parser(
                s.name, help=s.summary, description=module.__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
        else:
            subparsers.add_parser(s.name, help=s.summary, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((s for s in SUBCOMMANDS if argv and argv[0] == s.name), None)
    try:
        try:
            parser = build_parser(chosen)
            args = parser.parse_args(argv)
            if chosen is None:
                parser.print_help()
                return 0 if not argv else 2
            return int(args._run(args) or 0)
        except ModuleNotFoundError as e:  # an optional dependency, imported when the subcommand needs it
            error = missing_dependency(chosen, e) if chosen is not None else None
            if error is None:
                raise
            raise error from None
    except FakeLocatorError as e:
        prog = f"fakelocator {chosen.name}" if chosen else "fakelocator"
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
