"""Build and load tdlib's compiled library (the ``*.c`` files of this package), on first use.

Each C file is compiled with its own floating-point flags (:data:`SOURCES`), tuned for the CPU it
runs on, and linked into one shared library in a cache folder (``$TDLIB_CACHE``, else
``~/.cache/tdlib``), written atomically. The cache key holds the sources, the flags and the CPU's
model and feature flags, so another CPU sharing the folder gets its own build. Where no compiler
works, or with ``TDLIB_NATIVE=0``, :func:`library` returns None and callers take their pure
numpy / torch paths instead. Nothing is compiled at import.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np

__all__ = ["SOURCES", "address", "cache_dir", "library"]

_HERE = Path(__file__).parent
#: C file -> its own flags. mt19937.c: no fused multiply-adds, so the Gaussians round as numpy's
#: baseline build does (checked value for value). conv.c: fused multiply-adds, as oneDNN uses.
SOURCES: dict[str, list[str]] = {"mt19937.c": ["-ffp-contract=off"], "conv.c": ["-ffp-contract=fast"]}
_FLAGS = ["-O3", "-fPIC", "-fno-math-errno"]
# tuned for the CPU it runs on (the vectorised draws: 0.6 vs 1.4 ns per double on an AMD EPYC with
# AVX-512; the convolutions use its vector width); the baseline of the architecture otherwise
_TUNED = ["-march=native"]


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


def _compile(cc: str, tmp: Path, out: Path, tuned: list[str]) -> subprocess.CompletedProcess[bytes]:
    objects = []
    for name, flags in SOURCES.items():
        obj = tmp / (name + ".o")
        proc = subprocess.run([cc, *_FLAGS, *tuned, *flags, "-c", "-o", str(obj), str(_HERE / name)],
                              capture_output=True, timeout=120, check=False)
        if proc.returncode != 0:
            return proc
        objects.append(str(obj))
    return subprocess.run([cc, "-shared", "-o", str(out), *objects, "-lm"], capture_output=True, timeout=120,
                          check=False)


def _build(cc: str, target: Path) -> None:
    """Compile tuned for this CPU, else for the baseline of its architecture; atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        out = Path(tmp) / target.name
        for tuned in (_TUNED, []):
            proc = _compile(cc, Path(tmp), out, tuned)
            if proc.returncode == 0:
                os.replace(out, target)
                return
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout,
                                            "\n".join(err[-5:]).encode())


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled library, building it on first use; None where it is disabled or cannot build."""
    if os.environ.get("TDLIB_NATIVE", "1") == "0":
        return None
    cc = _compiler()
    if cc is None:
        return None
    sources = b"".join((_HERE / name).read_bytes() + " ".join(flags).encode() for name, flags in SOURCES.items())
    key = hashlib.sha256(sources + " ".join([cc, *_FLAGS, *_TUNED, platform.machine(), _cpu_signature()]).encode())
    target = cache_dir() / f"tdlib-native-{key.hexdigest()[:16]}.so"
    try:
        if not target.is_file():
            _build(cc, target)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", None)
        why = f"{err}" + (f": {detail.decode(errors='replace')}" if isinstance(detail, bytes) and detail else "")
        warnings.warn(f"tdlib: compiled attack loops unavailable ({why}); using numpy / torch instead "
                      f"(same results, slower). Set TDLIB_NATIVE=0 to silence this.", RuntimeWarning,
                      stacklevel=2)
        return None
    # raw addresses (ctypes' ndpointer checks cost microseconds per call; callers check their arrays)
    ptr, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32
    lib.tdlib_doubles.argtypes = [ptr, ptr, ptr, i64]
    lib.tdlib_gauss.argtypes = [ptr, ptr, ptr, ptr, ptr, i64]
    lib.tdlib_shuffle.argtypes = [ptr, ptr, ptr, i64]
    lib.tdlib_conv_nchw.argtypes = [ptr, ptr, i64, i64, i64, i64, ptr, ptr, i64, ptr, i64, i64, ptr, i32, ptr]
    for f in (lib.tdlib_doubles, lib.tdlib_gauss, lib.tdlib_shuffle):
        f.restype = None
    lib.tdlib_conv_nchw.restype = i32
    lib.tdlib_conv1x1_nchw.argtypes = [ptr, i64, i64, i64, ptr, i64, ptr, i32, ptr]
    lib.tdlib_conv1x1_nchw.restype = None
    for f in (lib.tdlib_conv_block, lib.tdlib_conv_lanes, lib.tdlib_conv_max_width):
        f.argtypes, f.restype = [], i32
    return lib


def address(x: np.ndarray, dtype: type[np.generic], what: str) -> int:
    """The data address of a C-contiguous, writeable array of ``dtype`` (else ValueError)."""
    if x.dtype != dtype or not x.flags.c_contiguous or not x.flags.writeable:
        raise ValueError(f"tdlib.native: {what} must be a writeable C-contiguous {np.dtype(dtype).name} array; "
                         f"got {x.dtype}, contiguous={x.flags.c_contiguous}, writeable={x.flags.writeable}")
    return int(x.ctypes.data)
