"""The experiment grid: every notebook with its parameter sets, run through papermill.

* One Python process executes all jobs (papermill's Python API); ``jobs > 1`` runs several
  kernels in parallel on one machine.
* A finished job (its executed copy and a stamp matching the notebook source and parameters) is
  skipped; an interrupted one is re-executed, and the training/attack runs inside it resume from
  their run folders, so only missing work is done.
* ``only`` (a glob on job names) and ``shard="i/n"`` split the grid, e.g. one shard per GPU node.

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

from tdlib.config import get_profile
from tdlib.errors import ConfigError
from tdlib.io import read_json, write_json
from tdlib.notebook import execute_notebook

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
EXECUTED = REPO / "book" / "executed"

#: Extra parameter sets run only at the paper profile (besides each notebook's book run).
PAPER_EXTRAS: dict[str, list[dict[str, Any]]] = {
    "01_classification": [
        {"DATASETS": ["cifar10", "cifar10_aug"], "BACKBONES": ["resnet32", "nin"],
         "VARIANTS": ["bu", "td", "td_uni", "td_rev"]},
    ],
}


@dataclass(frozen=True)
class Job:
    """One notebook execution."""

    name: str
    notebook: Path
    parameters: dict[str, Any] = field(hash=False)
    output: Path = field(hash=False)

    def stamp(self) -> str:
        text = self.notebook.read_bytes() + json.dumps(self.parameters, sort_keys=True).encode()
        return hashlib.sha256(text).hexdigest()[:16]

    def stamp_path(self) -> Path:
        return self.output.with_suffix(".stamp.json")

    def is_finished(self) -> bool:
        try:
            return self.output.is_file() and read_json(self.stamp_path())["stamp"] == self.stamp()
        except (OSError, ValueError, KeyError):
            return False


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
    """All jobs of the grid at ``profile``."""
    get_profile(profile)  # validates the name
    base: dict[str, Any] = {"PROFILE": profile, "SEED": seed, "DEVICE": device}
    if runs_root is not None:
        base["RUN_DIR"] = str(runs_root)
    if data_dir is not None:
        base["DATA_DIR"] = str(data_dir)
    jobs: list[Job] = []
    for nb in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb")):
        jobs.append(Job(nb.stem, nb, dict(base), executed_dir / nb.name))
        if profile == "paper":
            for k, extra in enumerate(PAPER_EXTRAS.get(nb.stem, [])):
                name = f"{nb.stem}-extra{k}"
                out = Path(runs_root or "runs") / "sweep" / profile / f"{name}.ipynb"
                jobs.append(Job(name, nb, {**base, **extra}, out))
    return jobs


def select(jobs: Sequence[Job], only: str | None = None, shard: str | None = None) -> list[Job]:
    """Jobs whose name matches ``only`` (comma-separated globs) and that fall in ``shard`` "i/n"."""
    out = list(jobs)
    if only:
        pats = [p.strip() for p in only.split(",") if p.strip()]
        out = [j for j in out if any(fnmatch.fnmatch(j.name, p) or p in j.name for p in pats)]
    if shard:
        try:
            i, n = (int(v) for v in shard.split("/"))
            if not 0 <= i < n:
                raise ValueError
        except ValueError as exc:
            raise ConfigError(f"shard must look like 'i/n' with 0 <= i < n, got {shard!r}") from exc
        out = [j for k, j in enumerate(out) if k % n == i]
    return out


def run_sweep(
    jobs: Sequence[Job],
    *,
    parallel: int = 1,
    force: bool = False,
    cell_timeout: int = 1800,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Execute ``jobs`` (skipping finished ones unless ``force``); return one record per job.

    Raises:
        NotebookError: after all jobs ran, if any failed (the message lists them).
    """
    from tdlib.notebook import NotebookError

    env = {"TDLIB_PROGRESS": os.environ.get("TDLIB_PROGRESS", "text")}
    todo = [j for j in jobs if force or not j.is_finished()]
    for j in jobs:
        if j not in todo:
            log(f"[sweep] {j.name}: finished earlier, skipped")
    records: list[dict[str, Any]] = []

    def one(job: Job) -> dict[str, Any]:
        t0 = time.perf_counter()
        log(f"[sweep] {job.name}: running ({job.parameters})")
        try:
            execute_notebook(job.notebook, job.output, job.parameters, cell_timeout=cell_timeout,
                             env=env)
        except NotebookError as exc:
            log(f"[sweep] {job.name}: FAILED after {time.perf_counter() - t0:.0f} s: {exc}")
            return {"job": job.name, "ok": False, "seconds": time.perf_counter() - t0,
                    "error": str(exc)}
        secs = time.perf_counter() - t0
        write_json(job.stamp_path(), {"stamp": job.stamp(), "seconds": secs,
                                      "parameters": job.parameters})
        log(f"[sweep] {job.name}: done in {secs:.0f} s")
        return {"job": job.name, "ok": True, "seconds": secs}

    if parallel > 1 and len(todo) > 1:
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            records = list(pool.map(one, todo))
    else:
        records = [one(j) for j in todo]
    failed = [r for r in records if not r["ok"]]
    if failed:
        raise NotebookError("; ".join(f"{r['job']}: {r['error']}" for r in failed))
    return records


def describe(jobs: Sequence[Job]) -> list[Mapping[str, Any]]:
    """Name, notebook, parameters, output and state of each job (for ``--list``)."""
    return [
        {"job": j.name, "notebook": j.notebook.name, "parameters": j.parameters,
         "output": str(j.output), "finished": j.is_finished()}
        for j in jobs
    ]
