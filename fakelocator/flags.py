"""Flag names shared by the CLIs (``fakelocator …`` and ``trt-locate``): one meaning per name.

As in ultralytics' and Polygraphy's CLIs, a flag name means the same thing in every command:

- ``--batch N``: network inputs per inference call (images in ``fit`` analysis, tiles in
  ``native``), one number; a list of them is ``--batch-sizes``, a TensorRT profile ``--batch-range``;
- ``--device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``;
- ``--out DIR``: the output folder, defaulted under ``runs/``;
- ``--model-version``: a Triton model version folder (``--version`` prints the program's version).

Old spellings stay as hidden aliases that warn (``deprecated_alias``), so scripts keep working.
``tests/core/test_flags.py`` walks every command's parser and holds the names to this.
"""

from __future__ import annotations

import argparse
import sys

DEVICE_HELP = "auto, cpu, cuda or cuda:N"


class _Deprecated(argparse.Action):
    """Stores like the new flag (argparse converts through its ``type``), after a warning on stderr."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: {option_string} is deprecated, use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def deprecated_alias(parser, old: str, new: str, dest: str, type=None) -> None:  # noqa: A002 - argparse's name
    """``old`` as a hidden alias of the flag ``new``: stored in ``dest``, converted by ``type`` like it."""
    parser.add_argument(old, dest=dest, action=_Deprecated, new=new, type=type, default=argparse.SUPPRESS)


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse ``type`` of a count: an integer >= 1 (``--batch``, ``--every``, ``--concurrency``, ...)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse ``type`` of a size that may be zero: an integer >= 0 (``--tile-overlap``, ``--max-tiles``)."""
    return _int_at_least(text, 0)
