"""Shared fixtures: the offline data root, isolated run/cache folders."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


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


@pytest.fixture(scope="session")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium through the system chromedriver (selenium-manager never downloads anything).

    ``CI=true``: a missing chromium / chromedriver fails instead of skipping.
    """
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        msg = f"{', '.join(missing)} not found (run scripts/setup_browser.sh)"
        if os.environ.get("CI"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()
