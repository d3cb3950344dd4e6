"""foolbox 2's random streams, one per sample: numpy ``RandomState`` and python ``random.Random``.

foolbox 2.2.1 draws from a module-level ``numpy.random.RandomState`` (``foolbox.rngs.nprng``) and a
``random.Random`` (``foolbox.rngs.rng``). Under the ``paper`` protocol each sample gets its own pair,
both seeded with :func:`sample_seed` (what ``foolbox.set_seeds`` does), and the re-implemented attacks
consume them value for value as foolbox 2 does for a single image: same seed, same draws, same
adversarial. Everything is drawn by numpy's own generators:

* :class:`DoubleStream`: ``random_sample`` through a ``Generator`` on the ``RandomState``'s MT19937
  state (its ``random`` is ``random_sample`` value for value), ``standard_normal`` from the
  ``RandomState`` itself. The batched engines draw ahead of the scan (speculatively, in fixed-size
  blocks): the stream keeps the values drawn but not yet consumed, so what a sample gets never
  depends on the packing.
* :class:`ShuffleStream`: ``random.Random(seed).shuffle(list(range(n)))`` replayed on the 32-bit
  words of a numpy ``MT19937`` in ``random.Random``'s state (the same generator).
"""

from __future__ import annotations

import random

import numpy as np

from tdlib.attacks.seeding import derive_seed
from tdlib.errors import ConfigError

__all__ = ["DoubleStream", "ShuffleStream", "sample_seed"]

_BLOCK = 1 << 15  # values drawn at a time
_WORDS = 1 << 13  # MT19937 words drawn at a time by a ShuffleStream
_HALF = 1 << 31


def sample_seed(seed: int, index: int) -> int:
    """32-bit seed of sample ``index`` (its position in the whole input) under base ``seed``.

    Running foolbox 2.2.1 on that image alone after ``foolbox.set_seeds(sample_seed(seed, index))``
    reproduces tdlib's ``paper`` result for it.
    """
    return derive_seed(seed, int(index)) % 2**32


def _mt19937(key: object, pos: int) -> np.random.MT19937:
    bits = np.random.MT19937()
    bits.state = {"bit_generator": "MT19937",
                  "state": {"key": np.asarray(key, dtype=np.uint32), "pos": int(pos)}}
    return bits


class DoubleStream:
    """The values ``RandomState(seed).random_sample`` (``kind="uniform"``) or ``.standard_normal``
    (``kind="normal"``) yields one after the other, addressed by position.

    :meth:`window` returns the values ``[start, stop)``; :meth:`release` forgets those before a
    position once nobody will ask for them again. Drawing ``n`` values in one call or in several
    gives the same sequence (numpy's legacy Gaussian keeps its spare value between calls), so the
    block size never shows. Uniform values are drawn straight into the buffer (extending a window
    copies nothing already drawn).
    """

    def __init__(self, seed: int, kind: str = "uniform") -> None:
        if kind not in ("uniform", "normal"):
            raise ConfigError(f"unknown stream kind {kind!r}")
        self.rs = np.random.RandomState(seed)
        self.kind = kind
        self._gen: np.random.Generator | None = None
        if kind == "uniform":
            state = self.rs.get_state(legacy=False)["state"]
            self._gen = np.random.Generator(_mt19937(state["key"], state["pos"]))
        self._buf = np.empty(0, dtype=np.float64)
        self._lo = 0  # _buf[_lo:_hi] holds the values at positions _base.._base + (_hi - _lo) - 1
        self._hi = 0
        self._base = 0

    def _fill(self, out: np.ndarray) -> None:
        if self._gen is not None:
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


class ShuffleStream:
    """The orders ``random.Random(seed).shuffle(list(range(n)))`` gives, one call after the other.

    CPython's ``shuffle`` swaps ``x[i]`` with ``x[j]`` for ``i = n-1 .. 1``, ``j = _randbelow(i + 1)``;
    ``_randbelow(m)`` takes MT19937 words ``w`` until ``w >> (32 - k) < m`` (``k = m.bit_length()``)
    and returns that value. The words come from a numpy ``MT19937`` set to the ``random.Random``'s
    state (the same algorithm), drawn in blocks; those a shuffle does not use are kept for the
    next one. A word accepts for ``m`` iff ``w < m << (32 - k)``: every word below ``2**31`` is
    accepted whatever ``m`` is, so only the others are walked one by one (the acceptances of a
    step depend on the steps before); the values and the permutation are computed on whole arrays
    (:func:`fisher_yates`).
    """

    def __init__(self, seed: int) -> None:
        _, words, _ = random.Random(seed).getstate()
        self._bits = _mt19937(words[:624], words[624])
        self._buf = np.zeros(0, dtype=np.int64)
        self._pos = 0
        self._tables: dict[int, tuple[list[int], np.ndarray]] = {}

    def _words(self, count: int) -> np.ndarray:
        """The next ``count`` words (not consumed: :meth:`permutation` advances ``_pos``)."""
        if self._pos + count > self._buf.size:
            fresh = self._bits.random_raw(max(count, _WORDS)).astype(np.int64)
            self._buf = np.concatenate([self._buf[self._pos:], fresh])
            self._pos = 0
        return self._buf[self._pos:self._pos + count]

    def _table(self, n: int) -> tuple[list[int], np.ndarray]:
        """For m = 0..n: the acceptance bound ``m << (32 - k)`` (a list) and ``k = m.bit_length()``."""
        if n not in self._tables:
            m = np.arange(n + 1, dtype=np.int64)
            k = np.zeros(n + 1, dtype=np.int64)
            k[1:] = np.frexp(m[1:].astype(np.float64))[1]
            self._tables[n] = ((m << (32 - k)).tolist(), k)
        return self._tables[n]

    def draws(self, n: int) -> np.ndarray:
        """The ``j`` of ``shuffle`` on ``n`` elements, for ``i = n-1 .. 1`` (int64, n - 1 values)."""
        if n > 2**32:
            raise ConfigError(f"a shuffle replay takes at most 2**32 elements; got {n}")
        steps = n - 1
        if steps <= 0:
            return np.zeros(0, dtype=np.int64)
        bound, bits = self._table(n)
        count = 2 * steps + 64  # expected ~1.3 words per step
        while True:
            w = self._words(count)
            wide = np.flatnonzero(w >= _HALF)
            # m at the q-th wide word: n - (accepted before it) = n - (pos - q) - (wide ones accepted)
            before = (n - wide + np.arange(wide.size)).tolist()
            rejected = []
            taken = 0
            for q, (m0, word) in enumerate(zip(before, w[wide].tolist(), strict=True)):
                m = m0 - taken
                if m < 2:  # the shuffle ended before this word
                    break
                if word < bound[m]:
                    taken += 1
                else:
                    rejected.append(q)
            accept = np.ones(w.size, dtype=bool)
            accept[wide[rejected]] = False
            used = np.flatnonzero(accept)[:steps]
            if used.size == steps:
                break
            count *= 2  # too few words for this shuffle (never at these sizes): redo with more
        self._pos += int(used[-1]) + 1
        return w[used] >> (32 - bits[n:1:-1])

    def permutation(self, n: int) -> np.ndarray:
        """``x = list(range(n)); rng.shuffle(x)`` as an int64 array (the stream moves on)."""
        return fisher_yates(n, self.draws(n))


def fisher_yates(n: int, j: np.ndarray) -> np.ndarray:
    """``range(n)`` after swapping ``x[i], x[j[t]]`` for ``i = n-1-t``, t = 0..n-2, in that order.

    Position ``i`` is final after its swap and then holds what position ``j_i`` held just before it:
    the original ``j_i`` unless an earlier swap (a larger ``i'`` with ``j_{i'} = j_i``; the last
    one is the smallest) wrote there. A swap at ``i'`` writes what position ``i'`` held before it,
    ``src(i')``: itself unless an earlier swap wrote there, recursively. The chains are followed
    by pointer doubling.
    """
    if n <= 1:
        return np.arange(max(n, 0), dtype=np.int64)
    step = np.arange(n - 1, 0, -1, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    order = np.lexsort((step, j))  # by target, then by step (ascending: the later-made swap first)
    tgt, st = j[order], step[order]
    same = tgt[1:] == tgt[:-1]
    later = np.full(st.size, -1, dtype=np.int64)  # the next-larger step with the same target
    later[:-1][same] = st[1:][same]
    # src: the last writer of a position before its own swap (a swap targeting it at a larger
    # step; targets never exceed their step, and a self-swap writes nothing new)
    ptr = np.arange(n, dtype=np.int64)
    other = st != tgt
    t_o, s_o = tgt[other], st[other]
    first = np.ones(t_o.size, dtype=bool)
    first[1:] = t_o[1:] != t_o[:-1]
    ptr[t_o[first]] = s_o[first]
    while True:
        nxt = ptr[ptr]
        if np.array_equal(nxt, ptr):
            break
        ptr = nxt
    out = np.empty(n, dtype=np.int64)
    out[st] = np.where(later >= 0, ptr[np.maximum(later, 0)], tgt)
    zero = np.flatnonzero(tgt == 0)
    out[0] = ptr[st[zero[0]]] if zero.size else 0
    return out
