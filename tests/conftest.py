"""Shared fixtures: the offline data root, isolated run/cache folders."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


def shared_data_root() -> Path | None:
    env = os.environ.get("TDLIB_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if (cand / "MNIST" / "raw").is_dir():
            return cand.resolve()
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = shared_data_root()
    if root is None:
        pytest.fail("offline data not found: set TDLIB_DATA to the shared data folder")
    return root


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs and caches go to temporary folders; never download; keep the data root."""
    root = shared_data_root()
    if root is not None:
        monkeypatch.setenv("TDLIB_DATA", str(root))
    monkeypatch.setenv("TDLIB_OFFLINE", "1")
    monkeypatch.setenv("TDLIB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("TDLIB_RUNS", str(tmp_path_factory.getbasetemp() / "runs-default"))
    monkeypatch.setenv("TDLIB_PROGRESS", "off")


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """Run many tiny CPU ops on one thread: on a busy 2-core machine OpenMP's thread hand-offs
    dominate (measured ~6x slower with 2 threads under load); restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
