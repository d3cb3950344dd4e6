"""Seeds: per-sample generators for the re-implemented attacks, scoped global RNGs for foolbox."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch

__all__ = ["derive_seed", "sample_generators", "scoped_global_seed"]


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any printable parts (e.g. base seed, attack, repetition)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def sample_generators(seed: int, indices: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per sample, keyed by (seed, global sample index).

    Keying by the sample's index in the whole input makes every re-implemented attack's result
    for a sample independent of the batch it was in, as in foolbox 2.
    """
    gens = []
    for i in indices:
        g = torch.Generator()
        g.manual_seed(derive_seed(seed, int(i)))
        gens.append(g)
    return gens


@contextlib.contextmanager
def scoped_global_seed(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's and numpy's global RNGs (foolbox draws from them) and restore them after."""
    np_state = np.random.get_state()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(np_state)
