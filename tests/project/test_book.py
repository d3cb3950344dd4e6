"""The built book, opened in a real headless Chromium.

A session fixture builds the book once, at the ``smoke`` profile, in an isolated temporary copy of the
project: ``_config.yml``, ``_toc.yml``, ``book/`` (without ``book/executed``), ``notebooks/``, the ``tdlib/``
sources (for the ``literalinclude`` directives) and ``benchmarks/RESULTS.md`` (a one-line stand-in when
``make bench`` has not written it yet). It executes every notebook with
:func:`tdlib.sweep.run_sweep` into that copy's ``book/executed`` (runs go to the copy's ``runs/``), then runs
``jupyter-book build <copy> --warningiserror --keep-going``. The working tree is never written to.

Environment:

* ``TDLIB_BOOK_HTML=<path to _build/html>``: test an existing build instead (e.g. the one ``make book``
  produced), skipping the sweep and the build. Screenshots are still written under it.
* ``CI=true``: a missing ``chromium`` / ``chromedriver`` fails the tests instead of skipping them
  (``scripts/setup_browser.sh`` installs both from Debian packages).

Pages are served by a threaded ``http.server`` on 127.0.0.1 (random port). The browser runs without
internet, so requests to CDNs fail; those console errors, and the 404 of the ``/favicon.ico`` Chromium asks
for by itself, are the only ones tolerated. Screenshots of the landing page and of one experiment page (scrolled
to its first figure) are saved in ``<html>/_screenshots/``; the build's timings in ``<html>/_build_times.json``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 600
SWEEP_CELL_TIMEOUT_S = 1800  # per cell; a shared 2-core machine can be several times slower than an idle one
#: Figures each executed page must show at any profile: minimum counts of plotly figures (drawn by plotly.js)
#: and of loaded images (matplotlib PNGs). Figures that depend on the data are not required.
REQUIRED_FIGURES: dict[str, dict[str, int]] = {
    "book/executed/00_architecture": {"plotly": 1, "img": 1},  # width profile; pyramid levels
    "book/executed/01_classification": {"plotly": 2},  # learning curves; accuracy bars
    # the paper's figure; the complete figure; the per-attack forest plot
    "book/executed/02_adversarial_robustness": {"plotly": 3},
    "book/executed/03_scale_perturbation": {"plotly": 1},  # accuracy per perturbed input subset
    # Figure 4 and the boxed examples (Figure 5 needs images that both models classify correctly,
    # which the smoke models may not give); the per-class box-energy bars
    "book/executed/04_imagenette_explainability": {"plotly": 1, "img": 2},
    "book/executed/05_localization": {"plotly": 1, "img": 1},  # energy bars; example maps
    "book/executed/06_results": {"plotly": 1},  # the forest plot of the claims
}
SCREENSHOT_PAGE = "book/executed/01_classification"
PROFILES = ("smoke", "quick", "paper")

# The smoke sweep and the build take about 10-15 minutes on 2 shared CPU cores; the first test pays for them.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(3600)]


# --------------------------------------------------------------------------- the pages of the TOC
def toc_pages(toc_file: Path = REPO / "_toc.yml") -> list[str]:
    """Every document of ``_toc.yml`` (root first), as paths without suffix relative to the book root."""
    import yaml

    toc = yaml.safe_load(toc_file.read_text())
    pages = [toc["root"]]

    def walk(entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            if "file" in entry:
                pages.append(str(Path(entry["file"]).with_suffix("")))
            walk(entry.get("sections", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    walk(toc.get("chapters", []))
    return pages


PAGES = toc_pages()
EXPERIMENT_PAGES = [p for p in PAGES if p.startswith("book/executed/")]


# --------------------------------------------------------------------------- building the book
def _copy_sources(dest: Path) -> None:
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "book", dest / "book", ignore=shutil.ignore_patterns("executed", "_build"))
    # kernel-ipc-*: sockets a killed kernel of an older tdlib left beside the notebooks (copytree
    # cannot copy a socket; kernels now keep theirs in the temporary folder)
    shutil.copytree(REPO / "notebooks", dest / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "kernel-ipc-*"))
    shutil.copytree(REPO / "tdlib", dest / "tdlib", ignore=shutil.ignore_patterns("__pycache__"))
    bench = REPO / "benchmarks" / "RESULTS.md"
    (dest / "benchmarks").mkdir()
    if bench.is_file():
        shutil.copy2(bench, dest / "benchmarks" / "RESULTS.md")
    else:
        # book/benchmarks.md includes the generated table; `make bench` writes it. Until it exists, the
        # copy gets a stand-in so that the rest of the book can still be checked.
        (dest / "benchmarks" / "RESULTS.md").write_text("*No benchmark results yet: run `make bench`.*\n")


def _jupyter_book() -> str:
    exe = Path(sys.executable).parent / "jupyter-book"
    found = str(exe) if exe.is_file() else shutil.which("jupyter-book")
    if found is None:
        pytest.fail("jupyter-book is not installed in this environment")
    return found


def _build_book(root: Path, data_root: Path) -> tuple[Path, dict[str, float]]:
    """Sweep the notebooks at the smoke profile and build the book under ``root``; return html dir, timings."""
    from tdlib.runner import NotebookError
    from tdlib.sweep import build_grid, run_sweep

    _copy_sources(root)
    times: dict[str, float] = {}
    env = {"TDLIB_DATA": str(data_root), "TDLIB_OFFLINE": "1", "TDLIB_CACHE": str(root / "cache"),
           "TDLIB_RUNS": str(root / "runs"), "TDLIB_PROGRESS": "off"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        jobs = build_grid(profile="smoke", notebooks_dir=root / "notebooks",
                          executed_dir=root / "book" / "executed", runs_root=str(root / "runs"))
        t0 = time.perf_counter()
        try:
            records = run_sweep(jobs, cell_timeout=SWEEP_CELL_TIMEOUT_S, log=lambda msg: None)
        except NotebookError as exc:
            pytest.fail(f"a notebook failed at the smoke profile: {exc}", pytrace=False)
        times["sweep_s"] = time.perf_counter() - t0
        times.update({f"notebook {r['job']} s": r["seconds"] for r in records})
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                [_jupyter_book(), "build", str(root), "--warningiserror", "--keep-going"],
                cwd=root, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"jupyter-book build did not finish in {BUILD_TIMEOUT_S} s", pytrace=False)
        times["jupyter_book_s"] = time.perf_counter() - t0
    if proc.returncode != 0:
        pytest.fail(f"jupyter-book build failed (exit {proc.returncode}):\n{proc.stdout[-6000:]}\n"
                    f"{proc.stderr[-6000:]}", pytrace=False)
    return root / "_build" / "html", times


@pytest.fixture(scope="session")
def book_build(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> tuple[Path, str | None]:
    """(html folder, profile it was built at or None if unknown), building once per session."""
    reuse = os.environ.get("TDLIB_BOOK_HTML")
    if reuse:
        html = Path(reuse).expanduser().resolve()
        if not (html / "index.html").is_file():
            pytest.fail(f"TDLIB_BOOK_HTML={reuse}: no index.html there", pytrace=False)
        return html, None
    data_root = request.getfixturevalue("data_root")
    t0 = time.perf_counter()
    html, times = _build_book(tmp_path_factory.mktemp("book"), data_root)
    times["total_s"] = time.perf_counter() - t0
    (html / "_build_times.json").write_text(json.dumps(times, indent=2))
    print(f"\n[test_book] smoke build: {json.dumps({k: round(v, 1) for k, v in times.items()})}")
    return html, "smoke"


@pytest.fixture(scope="session")
def html_dir(book_build: tuple[Path, str | None]) -> Path:
    return book_build[0]


# --------------------------------------------------------------------------- serving and browsing
class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def site(html_dir: Path) -> Iterator[str]:
    """Base URL (ending in '/') of a local threaded HTTP server on the built book."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(html_dir)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _open(driver: Any, url: str) -> None:
    driver.get(url)
    deadline = time.monotonic() + 30
    while driver.execute_script("return document.readyState") != "complete":
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not finish loading in 30 s", pytrace=False)
        time.sleep(0.1)


# --------------------------------------------------------------------------- tests
@pytest.mark.parametrize("page", PAGES)
def test_page_is_built_and_served(page: str, html_dir: Path, site: str) -> None:
    assert (html_dir / f"{page}.html").is_file(), f"{page}.html missing from the build"
    with urllib.request.urlopen(f"{site}{page}.html", timeout=30) as resp:
        assert resp.status == 200
        assert b"</html>" in resp.read()


def test_site_root_is_served(site: str, html_dir: Path) -> None:
    assert (html_dir / "index.html").is_file()
    with urllib.request.urlopen(site, timeout=30) as resp:
        assert resp.status == 200


#: Tolerated console errors: requests to other hosts (CDNs) that fail offline, and the /favicon.ico Chromium
#: asks every site for on its own (the book declares no favicon; that 404 is not the page's doing).
_TOLERATED = (
    re.compile(r"https?://(?!127\.0\.0\.1[:/])\S+.*net::ERR_"),
    re.compile(r"^http://127\.0\.0\.1:\d+/favicon\.ico - Failed to load resource: .*404"),
)


@pytest.mark.parametrize("page", PAGES)
def test_page_has_no_console_errors(page: str, driver: Any, site: str) -> None:
    driver.get_log("browser")  # drop what earlier pages left
    _open(driver, f"{site}{page}.html")
    time.sleep(0.5)  # let late scripts report
    severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    errors = [m for m in severe if not any(t.search(m) for t in _TOLERATED)]
    assert not errors, f"{page}: JavaScript console errors:\n" + "\n".join(errors)


_LINKS_JS = """
return Array.from(document.querySelectorAll('a[href]')).map(a => a.href);
"""


@pytest.mark.parametrize("page", PAGES)
def test_internal_links_resolve(page: str, driver: Any, site: str, html_dir: Path) -> None:
    _open(driver, f"{site}{page}.html")
    broken = []
    n = 0
    for href in driver.execute_script(_LINKS_JS):
        if not href.startswith(site):
            continue
        path = urlsplit(href).path[len(urlsplit(site).path):]
        if path == "" or path.endswith("/"):
            path += "index.html"
        if not path.endswith(".html"):
            continue
        n += 1
        if not (html_dir / path).is_file():
            broken.append(href)
    assert n > 0, f"{page}: no internal navigation links at all"
    assert not broken, f"{page}: links to missing pages: {broken}"


_FIGURES_JS = """
const box = e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
const root = document.querySelector('main') || document.body;
return {
  plotly: Array.from(root.querySelectorAll('.plotly-graph-div')).map(e => ({
      size: box(e), drawn: e.querySelector('svg.main-svg') !== null, traces: (e.data || []).length})),
  images: Array.from(root.querySelectorAll('img')).map(i => ({
      src: i.currentSrc || i.src, complete: i.complete, natural: [i.naturalWidth, i.naturalHeight]})),
};
"""


def test_every_executed_page_has_figure_expectations() -> None:
    assert sorted(EXPERIMENT_PAGES) == sorted(REQUIRED_FIGURES), "update REQUIRED_FIGURES for the TOC's notebooks"


@pytest.mark.parametrize("page", EXPERIMENT_PAGES)
def test_experiment_page_figures(page: str, driver: Any, site: str) -> None:
    _open(driver, f"{site}{page}.html")
    time.sleep(1.0)  # plotly draws asynchronously
    figs = driver.execute_script(_FIGURES_JS)
    broken = [i["src"] for i in figs["images"] if not (i["complete"] and i["natural"][0] > 0)]
    assert not broken, f"{page}: images that did not load: {broken}"
    empty = [f for f in figs["plotly"] if not (f["size"][0] > 0 and f["size"][1] > 0)]
    assert not empty, f"{page}: plotly figures with zero size: {empty}"
    undrawn = [f for f in figs["plotly"] if not f["drawn"] or f["traces"] == 0]
    assert not undrawn, f"{page}: plotly figures that plotly.js did not draw: {undrawn}"
    need = REQUIRED_FIGURES.get(page, {})
    assert len(figs["plotly"]) >= need.get("plotly", 0), f"{page}: {len(figs['plotly'])} plotly figures, need {need}"
    assert len(figs["images"]) >= need.get("img", 0), f"{page}: {len(figs['images'])} images, need {need}"


@pytest.mark.parametrize("page", EXPERIMENT_PAGES)
def test_no_figure_shown_twice(page: str, driver: Any, site: str) -> None:
    """A matplotlib figure returned by a cell and left open in pyplot is displayed twice."""
    _open(driver, f"{site}{page}.html")
    srcs = [i["src"] for i in driver.execute_script(_FIGURES_JS)["images"]]
    twice = sorted({s for s in srcs if srcs.count(s) > 1})
    assert not twice, f"{page}: the same image is shown more than once: {twice}"


_INJECTED_JS = """
const cell = document.querySelector('.tag_injected-parameters');
return cell ? cell.innerText : null;
"""


@pytest.mark.parametrize("page", EXPERIMENT_PAGES)
def test_injected_parameters_are_shown(page: str, driver: Any, site: str,
                                       book_build: tuple[Path, str | None]) -> None:
    _open(driver, f"{site}{page}.html")
    text = driver.execute_script(_INJECTED_JS)
    assert text, f"{page}: papermill's injected-parameters cell is not on the page"
    match = re.search(r"PROFILE\s*=\s*[\"'](\w+)[\"']", text)
    assert match and match.group(1) in PROFILES, f"{page}: no PROFILE in the injected parameters: {text!r}"
    built_at = book_build[1]
    if built_at is not None:
        assert match.group(1) == built_at


_PAGE_TEXT_JS = """
const root = document.querySelector('main') || document.body;
return {
  text: root.innerText,
  sources: Array.from(root.querySelectorAll('div.cell_input')).map(e => e.innerText),
  wide: Array.from(root.querySelectorAll('table')).filter(t => {
      const box = t.closest('.cell_output, section, article') || root;
      return t.getBoundingClientRect().right > box.getBoundingClientRect().right + 1;
  }).map(t => t.innerText.slice(0, 80)),
};
"""


@pytest.mark.parametrize("page", EXPERIMENT_PAGES)
def test_page_is_clean_for_a_reader(page: str, driver: Any, site: str) -> None:
    """Parameters shown once, no progress-bar or kernel-transport noise, tables inside the page."""
    _open(driver, f"{site}{page}.html")
    got = driver.execute_script(_PAGE_TEXT_JS)
    params_cells = [t for t in got["sources"] if re.search(r"^PROFILE\s*=", t, re.M)]
    assert len(params_cells) == 1, f"{page}: the parameters are shown {len(params_cells)} times"
    for noise in ("it/s]", "img/s]", "Kernel is running over TCP", "%|"):
        assert noise not in got["text"], f"{page}: {noise!r} on the page"
    assert not got["wide"], f"{page}: tables wider than the page: {got['wide']}"


def _check_png(path: Path) -> tuple[int, int]:
    from PIL import Image, ImageStat

    assert path.is_file() and path.stat().st_size > 5_000, f"{path} missing or tiny"
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        stat = ImageStat.Stat(im.convert("L"))
        assert stat.stddev[0] > 5, f"{path} is (nearly) a single colour"
        return im.size


@pytest.mark.parametrize(("page", "name"), [(PAGES[0], "index"), (SCREENSHOT_PAGE, Path(SCREENSHOT_PAGE).name)])
def test_screenshot(page: str, name: str, driver: Any, site: str, html_dir: Path) -> None:
    _open(driver, f"{site}{page}.html")
    # on an experiment page, show its first figure rather than the top of the page
    driver.execute_script("const f = document.querySelector('main .plotly-graph-div, main img');"
                          "if (f && location.pathname.includes('/executed/')) f.scrollIntoView({block: 'center'});")
    time.sleep(1.0)
    out = html_dir / "_screenshots" / f"{name}.png"
    out.parent.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(out))
    width, height = _check_png(out)
    assert width >= 800 and height >= 600
    title = driver.title
    assert title and "Top-Down" in title + driver.find_element("tag name", "body").text

