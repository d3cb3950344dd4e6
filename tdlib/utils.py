"""Seeding, device selection and CPU thread settings, all explicit (nothing happens on import)."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from tdlib.errors import DeviceError, check_name

DEVICES = ("auto", "cpu", "cuda", "mps")


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices).

    Args:
        seed: the seed.
        deterministic: also ask torch for deterministic kernels (slower on GPU; on CPU the
            default kernels used here are already deterministic).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def select_device(name: str | torch.device | None = "auto") -> torch.device:
    """Resolve a device name: ``auto`` picks cuda, then mps, then cpu.

    Raises:
        DeviceError: ``cuda`` (or ``cuda:N``) or ``mps`` requested where none exists.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name is None:
        name = "auto"
    base = name.split(":", 1)[0]
    check_name("device", base, DEVICES)
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {name!r} requested but CUDA is not available on this machine; "
                "use device='auto' (falls back to cpu) or device='cpu'"
            )
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    if base == "mps" and not _mps_available():
        raise DeviceError("device 'mps' requested but MPS is not available; use 'auto' or 'cpu'")
    return torch.device(name)


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op CPU threads (default: ``$TDLIB_THREADS`` or the number of cores).

    Returns:
        the number of threads now in use.
    """
    if n is None:
        env = os.environ.get("TDLIB_THREADS")
        n = int(env) if env else (os.cpu_count() or 1)
    if n != torch.get_num_threads():
        torch.set_num_threads(max(1, n))
    return torch.get_num_threads()
