"""Command line: ``python -m tdlib {models,train,robustness,explain,claims,zoo,sweep}``.

Every user error (bad name, bad value, missing data, mismatched checkpoint) prints one line
``error: ...`` and exits with status 2; nothing is written before the inputs are validated.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from tdlib.cli import archive, claims, experiments, sweep, zoo
from tdlib.errors import TdlibError

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``error: ...``, status 2), like every other tdlib error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = _Parser(
        prog="python -m tdlib",
        description="Top-Down Networks (Lelekas et al., CVPRW 2020): models, training, "
        "robustness, explanations, the claims table, the pretrained zoo and the experiment sweep.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    experiments.register(sub)
    claims.register(sub)
    zoo.register(sub)
    archive.register(sub)
    sweep.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (130 after any Ctrl-C, whatever happened after it).

    Called as the program (``argv`` None: ``python -m tdlib``, the ``tdlib`` script), a Ctrl-C
    after the first is ignored until the process has ended; called with ``argv`` (from Python),
    the caller's own Ctrl-C handler is restored on return.
    """
    as_program = argv is None
    args = build_parser().parse_args(argv)
    interrupted = False
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: object) -> None:
        nonlocal interrupted
        first = not interrupted
        interrupted = True
        if first:  # a second Ctrl-C while the first unwinds must not swallow it
            raise KeyboardInterrupt

    # only where Ctrl-C raises today (not in a process started with SIGINT ignored, e.g. nohup)
    in_main = (threading.current_thread() is threading.main_thread()
               and previous is signal.default_int_handler)
    if in_main:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        status = int(args.func(args))
    except TdlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        interrupted = True
        status = 130
    finally:
        if in_main:
            # the program is about to exit: an impatient second Ctrl-C must not turn status 130
            # into death by SIGINT in the last lines of the interpreter
            signal.signal(signal.SIGINT, signal.SIG_IGN if as_program and interrupted else previous)
    if interrupted:
        print("interrupted: finished epochs/attacks/notebooks are saved; rerun the same command to "
              "resume", file=sys.stderr)
        return 130
    return status
