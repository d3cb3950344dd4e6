"""Hardening: environment variables and device names as an unlucky user sets them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tdlib.config import DataConfig
from tdlib.data import data_root, load_dataset
from tdlib.data.root import cache_dir
from tdlib.errors import ConfigError, DataError
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


def test_tdlib_data_pointing_at_a_file_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "data.tar"
    f.write_bytes(b"an archive, not a folder")
    monkeypatch.setenv("TDLIB_DATA", str(f))
    with pytest.raises(DataError) as info:
        data_root()
    msg = str(info.value)
    assert "is a file, not a folder" in msg and "$TDLIB_DATA" in msg
    assert "does not exist" not in msg
    with pytest.raises(DataError, match="is a file, not a folder"):
        load_dataset(DataConfig("mnist", root=str(f)))


def test_empty_data_root_argument_is_not_the_current_directory(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"data root \(from the root argument\) is an empty path"):
        data_root("")
    with pytest.raises(ConfigError, match="empty string would mean the current directory"):
        load_dataset(DataConfig("mnist", root=""))
    assert list(tmp_path.iterdir()) == []


def test_empty_env_paths_count_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TDLIB_DATA", "")
    monkeypatch.setenv("TDLIB_CACHE", "")
    assert cache_dir() == Path("~/.cache/tdlib").expanduser()  # not "." (the cwd)
    assert data_root() == cache_dir() / "data"


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
