"""Timing, device and logging helpers shared by the benchmark modules."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


def log(msg: str) -> None:
    """A progress line on stderr (stdout of a worker carries its JSON result)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def resolve_device(name: str | None) -> torch.device:
    """``None``/``auto`` -> CUDA when available, else CPU."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def sync(device: torch.device) -> None:
    """Wait for queued device work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    """Repeated wall-clock timings of one callable (seconds)."""

    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return float(statistics.median(self.times))

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the repeats were."""
        return (max(self.times) - min(self.times)) / self.median if self.median > 0 else 0.0


def time_fn(fn: Callable[[], object], *, device: torch.device, warmup: int, repeats: int) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed with ``time.perf_counter``.

    The device is synchronised before and after every timed call, so queued CUDA work is counted.
    """
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(max(repeats, 1)):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return Timing(tuple(times))
