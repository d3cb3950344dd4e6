"""foolbox 2's random streams, one per sample: numpy ``RandomState`` and python ``random.Random``.

foolbox 2.2.1 draws from a module-level ``numpy.random.RandomState`` (``foolbox.rngs.nprng``) and a
``random.Random`` (``foolbox.rngs.rng``). Under the ``paper`` protocol each sample gets its own pair,
both seeded with :func:`sample_seed` (what ``foolbox.set_seeds`` does), and the re-implemented attacks
consume them value for value as foolbox 2 does for a single image: same seed, same draws, same
adversarial. The batched engines draw ahead of the scan (speculatively, in fixed-size blocks):
:class:`DoubleStream` keeps the values drawn but not yet consumed, so what a sample gets never
depends on the packing.
"""

from __future__ import annotations

import random

import numpy as np

from tdlib.attacks.seeding import derive_seed
from tdlib.errors import ConfigError
from tdlib.native import MTState, library

__all__ = ["DoubleStream", "python_rng", "sample_seed"]

_BLOCK = 1 << 15  # values drawn at a time


def sample_seed(seed: int, index: int) -> int:
    """32-bit seed of sample ``index`` (its position in the whole input) under base ``seed``.

    Running foolbox 2.2.1 on that image alone after ``foolbox.set_seeds(sample_seed(seed, index))``
    reproduces tdlib's ``paper`` result for it.
    """
    return derive_seed(seed, int(index)) % 2**32


def python_rng(seed: int, index: int) -> random.Random:
    """foolbox 2's ``rngs.rng`` for one sample (``PointwiseAttack`` shuffles with it)."""
    return random.Random(sample_seed(seed, index))


class DoubleStream:
    """The values ``RandomState(seed).random_sample`` (``kind="uniform"``) or ``.standard_normal``
    (``kind="normal"``) yields one after the other, addressed by position.

    :meth:`window` returns the values ``[start, stop)``; :meth:`release` forgets those before a
    position once nobody will ask for them again. Drawing ``n`` values in one call or in several
    gives the same sequence (numpy's legacy Gaussian keeps its spare value between calls), so the
    block size never shows. Values are drawn straight into the buffer (extending a window copies
    nothing already drawn) by :mod:`tdlib.native`'s compiled replay where it is available, else by
    a ``Generator`` on the same MT19937 state (uniform: its ``random`` is ``random_sample`` value for
    value) or the ``RandomState`` itself (normal).
    """

    def __init__(self, seed: int, kind: str = "uniform") -> None:
        if kind not in ("uniform", "normal"):
            raise ConfigError(f"unknown stream kind {kind!r}")
        self.rs = np.random.RandomState(seed)
        self.kind = kind
        self._mt = MTState.from_numpy(self.rs) if library() is not None else None
        self._gen: np.random.Generator | None = None
        if self._mt is None and kind == "uniform":
            bits = np.random.MT19937()
            bits.state = self.rs.get_state(legacy=False)  # type: ignore[assignment]
            self._gen = np.random.Generator(bits)
        self._buf = np.empty(0, dtype=np.float64)
        self._lo = 0  # _buf[_lo:_hi] holds the values at positions _base.._base + (_hi - _lo) - 1
        self._hi = 0
        self._base = 0

    def _fill(self, out: np.ndarray) -> None:
        if self._mt is not None:  # compiled replay of the same draws (tdlib.native)
            (self._mt.doubles if self.kind == "uniform" else self._mt.gauss)(out)
        elif self._gen is not None:
            self._gen.random(out=out)
        else:
            out[:] = self.rs.standard_normal(out.size)

    def _skip(self, n: int) -> None:
        """Advance the generator by ``n`` values nobody looks at."""
        scratch = np.empty(min(n, _BLOCK))
        while n > 0:
            k = min(n, scratch.size)
            self._fill(scratch[:k])
            n -= k

    def window(self, start: int, stop: int) -> np.ndarray:
        """Values at positions ``start..stop-1`` (float64, a view: copy before modifying)."""
        if start < self._base:
            raise ConfigError(f"stream position {start} already released (now at {self._base})")
        held = self._hi - self._lo
        ahead = start - self._base - held
        if ahead > 0:  # values nobody looked at: draw them to advance the generator
            self._skip(ahead)
            self._lo = self._hi = 0
            self._base, held = start, 0
        need = stop - self._base - held
        if need > 0:
            need = max(need, _BLOCK)
            if self._hi + need > self._buf.size:  # move the held values to a buffer with room
                buf = np.empty(max(2 * (held + need), 4 * _BLOCK))
                buf[:held] = self._buf[self._lo:self._hi]
                self._buf, self._lo, self._hi = buf, 0, held
            self._fill(self._buf[self._hi:self._hi + need])
            self._hi += need
        off = self._lo - self._base
        return self._buf[start + off: stop + off]

    def release(self, pos: int) -> None:
        """Forget the values before ``pos`` (they will not be asked for again)."""
        drop = min(pos - self._base, self._hi - self._lo)
        if drop > 0:
            self._lo += drop
            self._base += drop

