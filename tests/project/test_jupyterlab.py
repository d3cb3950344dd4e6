"""JupyterLab for real: a headless JupyterLab on localhost, driven through Chromium.

The test copies notebook 02 with smoke parameters injected (as papermill would), starts
``jupyter lab`` on 127.0.0.1 with a token and private settings/workspace folders, opens the
notebook in headless Chromium, runs every cell from the Run menu, waits for the kernel, then changes
the model of the ipywidgets adversarial explorer and checks that the explorer redraws a different
figure. Finally it saves the notebook from the browser and checks on disk that every code cell ran
and none produced an error.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "02_adversarial_robustness.ipynb"
PARAMETERS = {"PROFILE": "smoke", "DATASETS": ["mnist"], "ATTACKS": ["gaussian_blur", "additive_gaussian"],
              "WHITEBOX": [], "N_SAMPLES": 8, "FOURIER": False}
RUN_TIMEOUT_S = 900  # the whole notebook at smoke; a busy 2-core machine is several times slower

pytestmark = [pytest.mark.browser, pytest.mark.timeout(1800)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Iterator[dict[str, Any]]:
    """A running JupyterLab serving a folder with the parameterised notebook."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    root = tmp_path_factory.mktemp("lab")
    work = root / "work"
    work.mkdir()
    nb = parameterize_notebook(load_notebook_node(str(NOTEBOOK)),
                               {**PARAMETERS, "RUN_DIR": str(root / "runs")})
    nbformat.write(nb, work / "explorer.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "TDLIB_DATA": str(data_root), "TDLIB_OFFLINE": "1", "TDLIB_PROGRESS": "off",
           "TDLIB_CACHE": str(root / "cache"), "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces"), "PYTHONPATH": str(REPO)}
    exe = Path(sys.executable).parent / "jupyter-lab"
    cmd = [str(exe) if exe.is_file() else shutil.which("jupyter-lab") or "jupyter-lab",
           "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--ServerApp.open_browser=False"]
    log = open(root / "lab.log", "w")  # noqa: SIM115 - closed in the finally clause
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start:\n{(root / 'lab.log').read_text()[-3000:]}",
                            pytrace=False)
            time.sleep(0.5)
        yield {"url": f"{base}/lab/tree/explorer.ipynb?token={token}", "path": work / "explorer.ipynb",
               "log": root / "lab.log", "sessions": f"{base}/api/sessions?token={token}"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _wait(cond: Any, timeout: float, what: str, lab: dict[str, Any]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = cond()
        except Exception:  # a DOM node may be replaced while JupyterLab re-renders
            value = None
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; server log:\n"
                f"{Path(lab['log']).read_text()[-3000:]}", pytrace=False)


def _kernel_idle(lab: dict[str, Any]) -> bool:
    """The server says the notebook's kernel is up and idle (the page may show its name earlier)."""
    with urllib.request.urlopen(lab["sessions"], timeout=5) as r:
        sessions = json.loads(r.read())
    return any((s.get("kernel") or {}).get("execution_state") == "idle" for s in sessions)


def _click_menu(driver: Any, menu: str, command: str) -> None:
    from selenium.webdriver.common.by import By

    for item in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item"):
        if item.text.strip() == menu:
            item.click()
            break
    else:
        pytest.fail(f"menu {menu!r} not found", pytrace=False)
    entry = _wait_element(driver, f'.lm-Menu-item[data-command="{command}"]')
    entry.click()


def _wait_element(driver: Any, css: str, timeout: float = 10) -> Any:
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while True:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        if found or time.monotonic() > deadline:
            if not found:
                pytest.fail(f"{css} not found", pytrace=False)
            return found[0]
        time.sleep(0.2)


def _explorer_image(driver: Any) -> str | None:
    from selenium.webdriver.common.by import By

    imgs = driver.find_elements(By.CSS_SELECTOR, ".widget-output img")
    return imgs[0].get_attribute("src") if imgs else None


def test_notebook_runs_in_jupyterlab_and_its_explorer_reacts(lab: dict[str, Any], driver: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    driver.get(lab["url"])
    _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-CodeCell"), 120,
          "the notebook to open", lab)
    _wait(lambda: _kernel_idle(lab), 120, "the kernel to start", lab)
    _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-Toolbar-kernelName"), 60, "the kernel's name", lab)

    def prompts() -> list[str]:
        return [p.text.strip() for p in driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")]

    def started() -> bool:
        return any(p not in ("", "[ ]:") for p in prompts())

    # Run All; a click that JupyterLab drops (a page still settling) leaves every prompt empty: a
    # user would click again, and so does the test, once
    _click_menu(driver, "Run", "runmenu:run-all")
    deadline = time.monotonic() + 60
    while not started() and time.monotonic() < deadline:
        time.sleep(0.5)
    if not started():
        _click_menu(driver, "Run", "runmenu:run-all")

    def finished() -> bool:
        errors = [e.text for e in driver.find_elements(
            By.CSS_SELECTOR, '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
            if "Traceback" in e.text]
        if errors:
            pytest.fail(f"a cell failed in JupyterLab:\n{errors[0][-3000:]}", pytrace=False)
        shown = prompts()
        return bool(shown) and all(p not in ("", "[ ]:", "[*]:") for p in shown)

    _wait(finished, RUN_TIMEOUT_S, "every cell to run", lab)
    select = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".widget-dropdown select"), 60,
                   "the explorer's controls", lab)[0]
    options = [o.text for o in Select(select).options]
    assert len(options) == 2, options  # mnist lenetfc/bu and lenetfc/td
    before = _wait(lambda: _explorer_image(driver), 60, "the explorer's first figure", lab)
    # another image: move the sample slider one step with the keyboard, as a user would
    handle = _wait_element(driver, ".widget-hslider .noUi-handle")
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)
    after = _wait(lambda: (src := _explorer_image(driver)) and src != before and src, 120,
                  "the explorer to redraw after the sample slider moved", lab)
    # another model: the dropdown
    Select(select).select_by_index(1)
    _wait(lambda: (src := _explorer_image(driver)) and src != after, 120,
          "the explorer to redraw after the model changed", lab)

    # save from the browser, then check on disk that every cell ran without an error
    driver.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Notebook").click()
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.CONTROL, "s")
    time.sleep(1)

    def saved_and_complete() -> dict[str, Any] | None:
        nb = json.loads(Path(lab["path"]).read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        return nb if code and all(c.get("execution_count") for c in code) else None

    nb = _wait(saved_and_complete, 60, "the saved notebook to hold every executed cell", lab)
    errors = [(c.get("execution_count"), o.get("ename"), o.get("evalue")) for c in nb["cells"]
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
