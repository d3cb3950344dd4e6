"""Per-image booleans (correct / hit) as ``"0101…"`` text, compact and readable in JSON results."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["bits", "unbits"]


def bits(values: Iterable[bool] | np.ndarray) -> str:
    """Booleans as a ``"0101…"`` string.

    >>> bits([True, False, True])
    '101'
    """
    arr = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=bool)
    return (arr.reshape(-1).astype(np.uint8) + ord("0")).tobytes().decode("ascii")


def unbits(text: str) -> np.ndarray:
    """The inverse of :func:`bits` (a bool array).

    >>> unbits("101").tolist()
    [True, False, True]
    """
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8) == ord("1")
