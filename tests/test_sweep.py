"""The experiment grid (tdlib.sweep): job states, dependency order in parallel and in shards,
and Ctrl-C in the middle of a sweep."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tdlib.experiments.store import save_result

REPO = Path(__file__).resolve().parent.parent


def _grid(tmp_path: Path, names: tuple[str, ...]) -> list[Any]:
    from tdlib.sweep import build_grid

    nbs = tmp_path / "notebooks"
    nbs.mkdir(exist_ok=True)
    for n in names:
        shutil.copy2(REPO / "notebooks" / f"{n}.ipynb", nbs / f"{n}.ipynb")
    return build_grid("smoke", notebooks_dir=nbs, executed_dir=tmp_path / "executed",
                      runs_root=str(tmp_path / "runs"), device="cpu")


def test_results_page_runs_after_its_dependencies_also_in_parallel_and_shards(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tdlib.runner
    from tdlib.sweep import run_sweep, select

    order: list[str] = []

    def fake(src: Path, out: Path, params: dict[str, Any], **kw: Any) -> Path:
        time.sleep(0.2 if "01" in Path(src).name else 0.0)
        order.append(Path(out).stem)
        for path in (Path(out), Path(tdlib.runner.validate_parameters(src, params).result_path())):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")  # the executed copy and the result file the page would write
        return Path(out)

    monkeypatch.setattr(tdlib.runner, "execute_notebook", fake)
    jobs = _grid(tmp_path, ("01_classification", "03_scale_perturbation", "06_results"))
    assert {j.name: j.state() for j in jobs} == {j.name: "pending" for j in jobs}
    run_sweep(select(jobs, shard="0/2"), parallel=2, all_jobs=jobs, log=lambda m: None)
    assert order == ["01_classification"]  # 06 waits for 03, the other shard's job
    run_sweep(select(jobs, shard="1/2"), parallel=2, all_jobs=jobs, log=lambda m: None)
    assert order == ["01_classification", "03_scale_perturbation", "06_results"]
    order.clear()
    run_sweep(jobs, parallel=2, force=True, log=lambda m: None)
    assert order[-1] == "06_results" and sorted(order[:2]) == ["01_classification", "03_scale_perturbation"]


def test_job_states_follow_sources_results_and_run_folders(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import tdlib.experiments.store as store
    from tdlib.io import write_json

    (job,) = [j for j in _grid(tmp_path, ("01_classification",))]
    assert job.state() == "pending"
    job.output.parent.mkdir(parents=True)
    job.output.write_text("{}")
    assert job.state() == "stale"  # no stamp
    run_folder = tmp_path / "runs" / "train" / "mnist-lenetfc-bu-x" / "rep0"
    run_folder.mkdir(parents=True)
    (run_folder / "DONE.json").write_text("{}")
    write_json(job.stamp_path(), {"stamp": job.stamp(), "runs": [str(run_folder)]})
    job.result_path().parent.mkdir(parents=True, exist_ok=True)
    job.result_path().write_text("{}")
    assert job.state() == "done"
    shutil.rmtree(run_folder.parent)  # "reset a run"
    assert job.state() == "stale"
    (run_folder).mkdir(parents=True)
    (run_folder / "DONE.json").write_text("{}")
    assert job.state() == "done"
    monkeypatch.setattr(store, "source_hash", lambda: "another tdlib")
    assert job.state() == "stale"  # the library changed


def test_results_page_is_stale_when_a_result_of_its_profile_changes(tmp_path: Path) -> None:
    from tests.experiments.test_claims import exp1_record

    (job,) = _grid(tmp_path, ("06_results",))
    before = job.stamp()
    rec = exp1_record(0.0, 50)
    rec = type(rec)(type(rec.meta)("exp1", "smoke", {}, "abc", "2026"), rec.evals)
    save_result(rec, tmp_path / "runs")
    assert job.stamp() != before


def _kernel_is_executing(executed: Path) -> bool:
    """Whether papermill's in-progress copy shows a code cell running or done (the kernel is up)."""
    for tmp in executed.glob(".*.running.ipynb"):
        try:
            nb = json.loads(tmp.read_text())
        except (OSError, ValueError):
            continue  # not written yet, or caught mid-write
        for cell in nb.get("cells", []):
            status = cell.get("metadata", {}).get("papermill", {}).get("status")
            if cell.get("cell_type") == "code" and status in ("running", "completed"):
                return True
    return False


@pytest.mark.parametrize(("presses", "parallel"), [(1, 1), (2, 1), (1, 2)])
def test_ctrl_c_ends_a_sweep_cleanly(tmp_path: Path, presses: int, parallel: int) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    executed = tmp_path / "executed"
    only = "01_classification" if parallel == 1 else "00_architecture,01_classification"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tdlib", "sweep", "--profile", "smoke", "--only", only,
         "--parallel", str(parallel),
         "--run-dir", str(tmp_path / "runs"), "--executed-dir", str(executed), "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
        # as in a terminal: a test run started in the background (nohup, `cmd &`) inherits SIGINT
        # ignored, and Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None
    assert ": running" in proc.stdout.readline()
    # interrupt as soon as the kernel executes cells (papermill's copy records a cell as running or
    # done): a fixed sleep raced a fast machine, where the whole smoke notebook ends within seconds
    deadline = time.monotonic() + 120
    while not _kernel_is_executing(executed) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before the kernel executed a cell"
    proc.send_signal(signal.SIGINT)
    if presses == 2:  # an impatient second Ctrl-C while the first unwinds: still status 130
        time.sleep(0.3)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Traceback" not in out
    assert err.strip().splitlines()[-1].startswith("interrupted:")
    leftovers = [p.name for p in executed.glob("*")] if executed.exists() else []
    assert not [n for n in leftovers if n.endswith((".running.ipynb", ".failed.ipynb"))], leftovers
    # in a parallel sweep the other thread's notebook is ended too, not run to its last cell
    assert not (executed / "01_classification.ipynb").exists()
    assert "FAILED" not in out
