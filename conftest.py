"""Doctests of tdlib (``pytest tdlib`` collects them with ``--doctest-modules``): they read the
offline data root and write nothing outside a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _doctest_environment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    if not isinstance(request.node, pytest.DoctestItem):
        return
    if not os.environ.get("TDLIB_DATA") and (REPO.parent / "shared" / "data").is_dir():
        monkeypatch.setenv("TDLIB_DATA", str(REPO.parent / "shared" / "data"))
    monkeypatch.setenv("TDLIB_OFFLINE", "1")
    monkeypatch.setenv("TDLIB_RUNS", str(tmp_path_factory.mktemp("doctest-runs")))
    monkeypatch.setenv("TDLIB_CACHE", str(tmp_path_factory.mktemp("doctest-cache")))
