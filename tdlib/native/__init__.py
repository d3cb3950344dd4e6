"""Compiled replays of numpy's and CPython's MT19937 draws (``mt19937.c``), loaded on first use.

foolbox 2's random attacks spend much of their time drawing: Salt&Pepper draws 784,000 uniform
values per MNIST image, Pointwise shuffles 784 indices thousands of times with CPython's
``random``. :class:`MTState` holds one MT19937 state (numpy's ``RandomState`` or CPython's
``random.Random``, same algorithm) and draws from it in C, value for value what the library would
have drawn.

The C file is compiled once per machine (tuned for its CPU) with the system C compiler (``cc``, or ``$CC``) into a
cache folder (``$TDLIB_CACHE``, else ``~/.cache/tdlib``), written atomically. Where no compiler
works, or with ``TDLIB_NATIVE=0``, :func:`library` returns None and callers draw with numpy /
``random`` instead: the same values, more slowly. Nothing is compiled at import.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import random
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np

__all__ = ["MTState", "cache_dir", "library"]

_SOURCES = (Path(__file__).with_name("mt19937.c"),)
# -ffp-contract=off: no fused multiply-adds, so the Gaussians round as numpy's baseline build does
_FLAGS = ["-O3", "-shared", "-fPIC", "-fno-math-errno", "-ffp-contract=off"]
# tuned for the CPU it runs on (the vectorised draws: 0.6 vs 1.4 ns per double on an AMD EPYC with
# AVX-512); the cache key holds the CPU's signature, so another CPU gets its own build
_TUNED = ["-march=native"]
_N = 624



def _address(x: np.ndarray, dtype: type[np.generic], what: str) -> int:
    """The data address of a C-contiguous, writeable array of ``dtype`` (else ValueError)."""
    if x.dtype != dtype or not x.flags.c_contiguous or not x.flags.writeable:
        raise ValueError(f"tdlib.native: {what} must be a writeable C-contiguous {np.dtype(dtype).name} array; "
                         f"got {x.dtype}, contiguous={x.flags.c_contiguous}, writeable={x.flags.writeable}")
    return int(x.ctypes.data)


def cache_dir() -> Path:
    """Where the compiled library is kept."""
    env = os.environ.get("TDLIB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "tdlib"


def _compiler() -> str | None:
    cc = os.environ.get("CC") or "cc"
    return shutil.which(cc)


def _cpu_signature() -> str:
    """The CPU model and feature flags (what ``-march=native`` compiles for), where Linux tells."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    keep = [ln for ln in lines if ln.startswith(("model name", "flags", "Features", "CPU part"))]
    return "\n".join(dict.fromkeys(keep))


def _build(cc: str, target: Path) -> None:
    """Compile tuned for this CPU, else for the baseline of its architecture; atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        for extra in (_TUNED, []):
            cmd = [cc, *_FLAGS, *extra, "-o", tmp, *map(str, _SOURCES), "-lm"]
            proc = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
            if proc.returncode == 0:
                break
        else:
            raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled library, building it on first use; None where it is disabled or cannot build."""
    if os.environ.get("TDLIB_NATIVE", "1") == "0":
        return None
    cc = _compiler()
    if cc is None:
        return None
    key = hashlib.sha256(b"".join(f.read_bytes() for f in _SOURCES)
                         + " ".join([cc, *_FLAGS, *_TUNED, platform.machine(), _cpu_signature()]).encode())
    target = cache_dir() / f"tdlib-native-{key.hexdigest()[:16]}.so"
    try:
        if not target.is_file():
            _build(cc, target)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as err:
        warnings.warn(f"tdlib: compiled MT19937 draws unavailable ({err}); drawing with numpy instead "
                      f"(same values, slower). Set TDLIB_NATIVE=0 to silence this.", RuntimeWarning,
                      stacklevel=2)
        return None
    # raw addresses (ctypes' ndpointer checks cost microseconds per call; MTState checks its arrays)
    ptr, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.tdlib_doubles.argtypes = [ptr, ptr, ptr, i64]
    lib.tdlib_gauss.argtypes = [ptr, ptr, ptr, ptr, ptr, i64]
    lib.tdlib_shuffle.argtypes = [ptr, ptr, ptr, i64]
    for f in (lib.tdlib_doubles, lib.tdlib_gauss, lib.tdlib_shuffle):
        f.restype = None
    return lib


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
        self._lib.tdlib_doubles(*self._state, _address(out, np.float64, "out"), out.size)

    def gauss(self, out: np.ndarray) -> None:
        """Fill float64 ``out`` as ``RandomState.standard_normal`` would (in order)."""
        self._lib.tdlib_gauss(*self._state, self._has_gauss.ctypes.data, self._spare.ctypes.data,
                              _address(out, np.float64, "out"), out.size)

    def shuffle(self, x: np.ndarray) -> None:
        """Shuffle int64 ``x`` in place as ``random.Random.shuffle`` shuffles a list."""
        if x.size > 2**32:
            raise ValueError("tdlib.native shuffles at most 2**32 elements")
        self._lib.tdlib_shuffle(*self._state, _address(x, np.int64, "x"), x.size)

    def to_python(self) -> tuple[object, ...]:
        """The state as ``random.Random.getstate()`` gives it (for ``setstate``)."""
        return (3, (*(int(w) for w in self.key), int(self.pos[0])), None)
