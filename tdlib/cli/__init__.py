"""Command line: ``python -m tdlib {models,train,robustness,explain,claims,zoo,sweep}``.

Every user error (bad name, bad value, missing data, mismatched checkpoint) prints one line
``error: ...`` and exits with status 2; nothing is written before the inputs are validated.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from tdlib.errors import TdlibError

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``error: ...``, status 2), like every other tdlib error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from tdlib.cli import claims, experiments, sweep, zoo

    parser = _Parser(
        prog="python -m tdlib",
        description="Top-Down Networks (Lelekas et al., CVPRW 2020): models, training, "
        "robustness, explanations, the claims table, the pretrained zoo and the experiment sweep.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    experiments.register(sub)
    claims.register(sub)
    zoo.register(sub)
    sweep.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except TdlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished epochs/attacks/notebooks are saved; rerun the same command to "
              "resume", file=sys.stderr)
        return 130
