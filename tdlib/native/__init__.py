"""tdlib's compiled inner loops, built on first use (:mod:`tdlib.native.build`).

* :class:`MTState` (``mt19937.c``): numpy's and CPython's MT19937 draws, value for value.
* :class:`NarrowConv` (``conv.c``): direct NCHW convolutions for the narrow full-resolution
  layers of the attack query graphs.

Without a C compiler, or with ``TDLIB_NATIVE=0``, :func:`library` is None and callers use their
numpy / torch paths: the same results, more slowly.
"""

from tdlib.native.build import cache_dir, library
from tdlib.native.conv import NarrowConv, narrow_conv_available
from tdlib.native.mt import MTState

__all__ = ["MTState", "NarrowConv", "cache_dir", "library", "narrow_conv_available"]
