"""Compiled replays of numpy's and CPython's MT19937 draws (``mt19937.c``).

foolbox 2's random attacks spend much of their time drawing: Salt&Pepper draws 784,000 uniform
values per MNIST image, Pointwise shuffles 784 indices thousands of times with CPython's
``random``. :class:`MTState` holds one MT19937 state (numpy's ``RandomState`` or CPython's
``random.Random``, same algorithm) and draws from it in C, value for value what the library would
have drawn.
"""

from __future__ import annotations

import random

import numpy as np

from tdlib.native.build import address, library

__all__ = ["MTState"]

_N = 624


class MTState:
    """One MT19937 state drawn from in C (needs :func:`library`).

    ``from_numpy`` takes a ``RandomState``'s state (its Gaussian spare included), ``from_python``
    a ``random.Random``'s; the source object is not advanced.
    """

    def __init__(self, key: np.ndarray, pos: int, has_gauss: bool = False, gauss: float = 0.0) -> None:
        lib = library()
        if lib is None:
            raise RuntimeError("tdlib.native: the compiled library is not available")
        self._lib = lib
        self.key = np.ascontiguousarray(key, dtype=np.uint32).copy()
        if self.key.shape != (_N,):
            raise ValueError(f"an MT19937 key has {_N} words, got shape {self.key.shape}")
        self.pos = np.array([pos], dtype=np.int32)
        self._has_gauss = np.array([int(has_gauss)], dtype=np.int32)
        self._spare = np.array([gauss], dtype=np.float64)
        self._state = (self.key.ctypes.data, self.pos.ctypes.data)  # fixed arrays: addresses once

    @classmethod
    def from_numpy(cls, rs: np.random.RandomState) -> MTState:
        state = rs.get_state(legacy=False)
        return cls(np.asarray(state["state"]["key"]), int(state["state"]["pos"]), bool(state["has_gauss"]),
                   float(state["gauss"]))

    @classmethod
    def from_python(cls, rng: random.Random) -> MTState:
        _, words, _ = rng.getstate()
        return cls(np.asarray(words[:_N], dtype=np.uint32), int(words[_N]))

    def doubles(self, out: np.ndarray) -> None:
        """Fill float64 ``out`` as ``RandomState.random_sample`` would (in order)."""
        self._lib.tdlib_doubles(*self._state, address(out, np.float64, "out"), out.size)

    def gauss(self, out: np.ndarray) -> None:
        """Fill float64 ``out`` as ``RandomState.standard_normal`` would (in order)."""
        self._lib.tdlib_gauss(*self._state, self._has_gauss.ctypes.data, self._spare.ctypes.data,
                              address(out, np.float64, "out"), out.size)

    def shuffle(self, x: np.ndarray) -> None:
        """Shuffle int64 ``x`` in place as ``random.Random.shuffle`` shuffles a list."""
        if x.size > 2**32:
            raise ValueError("tdlib.native shuffles at most 2**32 elements")
        self._lib.tdlib_shuffle(*self._state, address(x, np.int64, "x"), x.size)

    def to_python(self) -> tuple[object, ...]:
        """The state as ``random.Random.getstate()`` gives it (for ``setstate``)."""
        return (3, (*(int(w) for w in self.key), int(self.pos[0])), None)
