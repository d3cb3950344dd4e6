"""tdlib.utils: $TDLIB_THREADS and device names as an unlucky user sets them. (The data root's
environment variables: tests/data/test_errors.py.)"""

from __future__ import annotations

import os

import pytest
import torch

from tdlib.errors import ConfigError
from tdlib.utils import select_device, set_threads


@pytest.fixture
def restore_threads() -> object:
    n = torch.get_num_threads()
    yield n
    torch.set_num_threads(n)


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5", "2 threads", "²"])
def test_bad_tdlib_threads_is_a_clear_error(value: str, monkeypatch: pytest.MonkeyPatch,
                                            restore_threads: int) -> None:
    monkeypatch.setenv("TDLIB_THREADS", value)
    with pytest.raises(ConfigError, match=rf"\$TDLIB_THREADS must be a positive integer.*got '{value}'"):
        set_threads()
    assert torch.get_num_threads() == restore_threads  # nothing changed


def test_tdlib_threads_valid_and_empty(monkeypatch: pytest.MonkeyPatch, restore_threads: int) -> None:
    monkeypatch.setenv("TDLIB_THREADS", " 1 ")
    assert set_threads() == 1
    monkeypatch.setenv("TDLIB_THREADS", "")  # empty = unset: all cores
    assert set_threads() == (os.cpu_count() or 1)
    with pytest.raises(ConfigError, match="threads must be a positive integer, got 0"):
        set_threads(0)


@pytest.mark.parametrize("name", ["cuda:abc", "cuda:-1", "cuda:", "cuda:1.0", "auto:1"])
def test_malformed_device_index_is_a_clear_error_even_with_cuda(name: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=rf"device '{name}'"):
        select_device(name)


def test_device_index_forms_that_stay_valid() -> None:
    assert select_device("cpu") == torch.device("cpu")
    assert select_device(torch.device("cpu")) == torch.device("cpu")
    assert select_device("cpu:0") == torch.device("cpu:0")
