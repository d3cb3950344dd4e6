"""Helpers shared by the subcommands: argument types that refuse bad values, JSON output."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tdlib.io import to_json

__all__ = ["add_common", "names", "nonnegative_int", "positive_int", "print_json"]


def print_json(obj: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(to_json(obj))


def _int_at_least(minimum: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(1, text)


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(0, text)


def names(text: str) -> list[str]:
    """argparse type: a comma-separated list of names, none of them twice."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of names, got {text!r}")
    dupes = sorted({i for i in items if items.count(i) > 1})
    if dupes:
        raise argparse.ArgumentTypeError(f"{', '.join(dupes)} named more than once")
    return items


def path(text: str) -> str:
    """argparse type: a non-empty path (an empty one would silently mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder path, got an empty string")
    return text


def add_common(p: argparse.ArgumentParser, *, profile: bool = True, seed: bool = True,
               device: bool = True, data: bool = True) -> None:
    """The options several subcommands share (only those the subcommand uses)."""
    if profile:
        p.add_argument("--profile", default="quick",
                       help="smoke, quick (default: small subsets, a few epochs) or paper")
    if seed:
        p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--run-dir", type=path, default=None,
                   help="root of the run folders (default $TDLIB_RUNS or ./runs)")
    if data:
        p.add_argument("--data-root", type=path, default=None, help="data root (default $TDLIB_DATA)")
    if device:
        p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--json", action="store_true", help="print one JSON document")
