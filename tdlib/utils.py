"""Seeding, device selection and CPU thread settings, all explicit (nothing happens on import)."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from tdlib.errors import ConfigError, DeviceError, check_name

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


def _is_count(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def select_device(name: str | torch.device | None = "auto") -> torch.device:
    """Resolve a device name: ``auto`` picks cuda, then mps, then cpu.

    Raises:
        UnknownNameError: an unknown device name.
        ConfigError: a malformed index (``cuda:abc``, ``cuda:-1``).
        DeviceError: ``cuda`` (or ``cuda:N``) or ``mps`` requested where none exists.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name is None:
        name = "auto"
    if not isinstance(name, str):
        raise ConfigError(f"device must be a name such as 'auto', 'cpu' or 'cuda:0'; got {name!r}")
    base, _, index_text = name.partition(":")
    check_name("device", base, DEVICES)
    if ":" in name and (base == "auto" or not _is_count(index_text)):
        what = "'auto' takes no index" if base == "auto" else \
            "the index after ':' must be a non-negative integer (e.g. 'cuda:0')"
        raise ConfigError(f"device {name!r}: {what}; accepted: {', '.join(DEVICES)}, cuda:N")
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
        index = int(index_text) if index_text else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    if base == "mps" and not _mps_available():
        raise DeviceError("device 'mps' requested but MPS is not available; use 'auto' or 'cpu'")
    return torch.device(name)


THREADS_ENV = "TDLIB_THREADS"


def threads_from_env() -> int | None:
    """``$TDLIB_THREADS`` as a positive integer (``None`` when unset or empty).

    Raises:
        ConfigError: the variable is set to something else (``abc``, ``0``, ``-2``, ``1.5``).
    """
    env = os.environ.get(THREADS_ENV, "").strip()
    if not env:
        return None
    if not _is_count(env) or int(env) < 1:
        raise ConfigError(
            f"${THREADS_ENV} must be a positive integer (CPU threads), got {env!r}; "
            f"unset it to use all {os.cpu_count() or 1} cores"
        )
    return int(env)


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op CPU threads (default: ``$TDLIB_THREADS`` or the number of cores).

    Returns:
        the number of threads now in use.

    Raises:
        ConfigError: ``n`` is not a positive integer, or ``$TDLIB_THREADS`` is invalid.
    """
    if n is None:
        n = threads_from_env() or (os.cpu_count() or 1)
    elif isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"threads must be a positive integer, got {n!r}")
    if n != torch.get_num_threads():
        torch.set_num_threads(max(1, n))
    return torch.get_num_threads()
