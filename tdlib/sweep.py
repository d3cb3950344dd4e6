"""The experiment grid: every notebook with its parameter sets, run through papermill.

* Everything is validated before the first kernel starts: each job's parameters (through the
  notebook's parameter record), the device and the data root.
* One Python process executes the jobs (papermill's Python API); ``parallel > 1`` runs several
  kernels at once. The Results page (notebook 06) depends on every experiment job and always
  runs after them, also with ``parallel`` and ``shard``.
* A job is ``done`` when its executed copy exists and its stamp matches: the hash of the notebook,
  its parameters and the tdlib sources, its result file is present, and the training runs it used
  still exist (deleting a run folder, the README's "reset a run", re-executes the jobs that used
  it). The Results page's stamp also covers the content of every result of its profile. A job
  whose copy exists but is not done is ``stale``; one never run is ``pending``.
* ``only`` (comma-separated globs on job names) and ``shard="i/n"`` split the grid, e.g. one
  shard per GPU node; a dependent job runs in a shard only once all its dependencies are done.

The book's jobs write their executed copies to ``book/executed/<notebook>.ipynb``, which the book
renders (execution is off in the book itself).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tdlib import runner
from tdlib.config import get_profile
from tdlib.errors import ConfigError
from tdlib.experiments import store
from tdlib.experiments.params import Common, params_for_notebook
from tdlib.io import read_json, run_dir, write_json
from tdlib.names import PAPER_ATTACKS, VARIANTS

__all__ = ["EXECUTED", "NOTEBOOKS", "Job", "build_grid", "describe", "run_sweep", "select"]

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
EXECUTED = REPO / "book" / "executed"
RESULTS_NOTEBOOK = "06_results"

_ALL_TEN = list(PAPER_ATTACKS)

#: Extra parameter sets run only at the paper profile (besides each notebook's book run),
#: covering the supplement's Figures 1-3; each has its own result identity.
PAPER_EXTRAS: dict[str, list[dict[str, Any]]] = {
    "01_classification": [
        {"DATASETS": ["cifar10", "cifar10_aug"], "BACKBONES": ["resnet32", "nin"],
         "VARIANTS": list(VARIANTS)},
    ],
    "02_adversarial_robustness": [
        {"DATASETS": ["mnist", "fashion_mnist"], "BACKBONES": ["nin_light"], "ATTACKS": _ALL_TEN},
        {"DATASETS": ["cifar10_aug"], "BACKBONES": ["nin", "resnet32"],
         "VARIANTS": list(VARIANTS), "ATTACKS": _ALL_TEN},
    ],
    "03_scale_perturbation": [
        {"DATASETS": ["cifar10_aug"], "ATTACKS": _ALL_TEN},
    ],
}


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
        h.update(b"\x1f")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Job:
    """One notebook execution (parameters already validated into ``record``)."""

    name: str
    notebook: Path
    parameters: dict[str, Any] = field(hash=False)
    output: Path = field(hash=False)
    record: Any = field(hash=False, default=None, compare=False)
    depends_on: tuple[str, ...] = ()

    # -- state --------------------------------------------------------------------------
    def _results_digest(self) -> bytes:
        if self.notebook.stem != RESULTS_NOTEBOOK or self.record is None:
            return b""
        base = store._root(self.record.common.run_dir) / store.RESULTS_DIR
        files = sorted(base.glob(f"*/{self.record.common.profile}-*.json"))
        return b"".join(p.name.encode() + p.read_bytes() for p in files)

    def stamp(self) -> str:
        params = json.dumps(self.parameters, sort_keys=True, default=str).encode()
        return _digest(self.notebook.read_bytes(), params, store.source_hash().encode(),
                       self._results_digest())

    def stamp_path(self) -> Path:
        return self.output.with_suffix(".stamp.json")

    def result_path(self) -> Path | None:
        """The result file this job writes (``None`` for pages without one)."""
        if self.record is None or self.record.EXPERIMENT in ("architecture", "results"):
            return None
        return Path(self.record.result_path())

    def used_runs(self) -> list[str]:
        """Training run folders the job's saved result used (from its result record)."""
        path = self.result_path()
        if path is None or not path.is_file():
            return []
        try:
            rec = store.load_result(path)
        except Exception:  # a damaged result is reported when the page reads it
            return []
        root = run_dir(self.record.common.run_dir, "train", "x").parent
        return sorted({str(root / m.name) for m in rec.models() if m.source == "trained"})

    def state(self) -> str:
        """``done``, ``stale`` or ``pending`` (see the module docstring)."""
        if not self.output.is_file():
            return "pending"
        try:
            saved = read_json(self.stamp_path())
        except Exception:  # a missing or damaged stamp: run again
            return "stale"
        if saved.get("stamp") != self.stamp():
            return "stale"
        path = self.result_path()
        if path is not None and not path.is_file():
            return "stale"
        if any(not (Path(f) / "DONE.json").is_file() for f in saved.get("runs", [])):
            return "stale"
        return "done"

    def is_finished(self) -> bool:
        return self.state() == "done"


def build_grid(
    profile: str,
    *,
    notebooks_dir: Path = NOTEBOOKS,
    executed_dir: Path = EXECUTED,
    runs_root: str | None = None,
    data_dir: str | None = None,
    seed: int = 0,
    device: str = "auto",
) -> list[Job]:
    """All jobs of the grid at ``profile``, each one's parameters validated.

    Raises:
        ConfigError / DeviceError / DataError: an invalid parameter, device or data root.
    """
    get_profile(profile)  # validates the name
    Common(profile=profile, seed=seed, data_dir=data_dir, run_dir=runs_root,
           device=device).check_environment()
    base: dict[str, Any] = {"PROFILE": profile, "SEED": seed, "DEVICE": device}
    if runs_root is not None:
        base["RUN_DIR"] = str(runs_root)
    if data_dir is not None:
        base["DATA_DIR"] = str(data_dir)
    jobs: list[Job] = []
    notebooks = sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    for nb in notebooks:
        variants = [(nb.stem, dict(base), executed_dir / nb.name)]
        if profile == "paper":
            for k, extra in enumerate(PAPER_EXTRAS.get(nb.stem, [])):
                name = f"{nb.stem}-extra{k}"
                out = Path(runs_root or (REPO / "runs")) / "sweep" / profile / f"{name}.ipynb"
                variants.append((name, {**base, **extra}, out))
        for name, params, out in variants:
            record = runner.validate_parameters(nb, params) if params_for_notebook(nb.stem) else None
            jobs.append(Job(name, nb, params, out, record))
    others = tuple(j.name for j in jobs if j.notebook.stem not in (RESULTS_NOTEBOOK, "00_architecture"))
    return [Job(j.name, j.notebook, j.parameters, j.output, j.record,
                others if j.notebook.stem == RESULTS_NOTEBOOK else ()) for j in jobs]


def select(jobs: Sequence[Job], only: str | None = None, shard: str | None = None) -> list[Job]:
    """Jobs whose name matches ``only`` (comma-separated globs) and that fall in ``shard`` "i/n".

    Jobs that depend on others (the Results page) are in every shard; they run there once their
    dependencies are done.

    Raises:
        ConfigError: ``only`` matches no job, or ``shard`` is malformed.
    """
    out = list(jobs)
    if only is not None:
        pats = [p.strip() for p in only.split(",") if p.strip()]
        out = [j for j in out if any(fnmatch.fnmatch(j.name, p) or p == j.name for p in pats)]
        if not out:
            raise ConfigError(f"--only {only!r} matches no job; jobs: "
                              + ", ".join(j.name for j in jobs))
    if shard:
        try:
            i, n = (int(v) for v in shard.split("/"))
            if not 0 <= i < n:
                raise ValueError
        except ValueError as exc:
            raise ConfigError(f"shard must look like 'i/n' with 0 <= i < n, got {shard!r}") from exc
        independent = [j for j in out if not j.depends_on]
        mine = {j.name for k, j in enumerate(independent) if k % n == i}
        out = [j for j in out if j.depends_on or j.name in mine]
    return out


def run_sweep(
    jobs: Sequence[Job],
    *,
    parallel: int = 1,
    force: bool = False,
    cell_timeout: int = 1800,
    log: Callable[[str], None] = print,
    all_jobs: Sequence[Job] | None = None,
) -> list[dict[str, Any]]:
    """Execute ``jobs`` (skipping done ones unless ``force``); return one record per job.

    Independent jobs run first (``parallel`` at a time), then the jobs that depend on them.

    Raises:
        NotebookError: after the others ran, if any job failed (the message lists them).
        KeyboardInterrupt: Ctrl-C; finished jobs are kept, nothing half-written is left.
    """
    if parallel < 1:
        raise ConfigError(f"parallel must be >= 1, got {parallel}")
    env = {"TDLIB_PROGRESS": os.environ.get("TDLIB_PROGRESS", "off")}
    universe = {j.name: j for j in (all_jobs or jobs)}
    records: list[dict[str, Any]] = []

    def one(job: Job) -> dict[str, Any]:
        t0 = time.perf_counter()
        log(f"[sweep] {job.name}: running")
        try:
            runner.execute_notebook(job.notebook, job.output, job.parameters, cell_timeout=cell_timeout,
                             env=env)
        except runner.NotebookInterrupted as exc:
            log(f"[sweep] {job.name}: interrupted")
            return {"job": job.name, "ok": False, "seconds": time.perf_counter() - t0,
                    "error": str(exc)}
        except runner.NotebookError as exc:
            log(f"[sweep] {job.name}: FAILED after {time.perf_counter() - t0:.0f} s: {exc}")
            return {"job": job.name, "ok": False, "seconds": time.perf_counter() - t0,
                    "error": str(exc)}
        secs = time.perf_counter() - t0
        write_json(job.stamp_path(), {"stamp": job.stamp(), "seconds": secs,
                                      "parameters": job.parameters, "runs": job.used_runs()})
        log(f"[sweep] {job.name}: done in {secs:.0f} s")
        return {"job": job.name, "ok": True, "seconds": secs}

    def todo(batch: Sequence[Job]) -> list[Job]:
        out = []
        for j in batch:
            if force or j.state() != "done":
                out.append(j)
            else:
                log(f"[sweep] {j.name}: done earlier, skipped")
        return out

    first = todo([j for j in jobs if not j.depends_on])
    try:
        if parallel > 1 and len(first) > 1:
            pool = ThreadPoolExecutor(max_workers=parallel)
            try:
                records += list(pool.map(one, first))
            except KeyboardInterrupt:  # before the pool waits for its threads' notebooks
                runner.kill_running_kernels()
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            records += [one(j) for j in first]
        for j in (j for j in jobs if j.depends_on):
            waiting = [d for d in j.depends_on if d in universe and universe[d].state() != "done"]
            if waiting:
                log(f"[sweep] {j.name}: not run, waiting for {', '.join(waiting)}")
                continue
            records += [one(x) for x in todo([j])]
    except KeyboardInterrupt:
        runner.kill_running_kernels()  # notebooks in other threads end now, not at their last cell
        log("[sweep] interrupted: finished jobs are kept; rerun the same command to continue")
        raise
    failed = [r for r in records if not r["ok"]]
    if failed:
        raise runner.NotebookError("; ".join(f"{r['job']}: {r['error']}" for r in failed))
    return records


def describe(jobs: Sequence[Job]) -> list[Mapping[str, Any]]:
    """Name, notebook, parameters, output, state and dependencies of each job (``--list``)."""
    return [
        {"job": j.name, "notebook": j.notebook.name, "parameters": j.parameters,
         "output": str(j.output), "state": j.state(), "depends_on": list(j.depends_on)}
        for j in jobs
    ]
