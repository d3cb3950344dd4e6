"""``sweep``: every notebook of the grid through papermill."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tdlib import sweep
from tdlib.cli.common import nonnegative_int, path, positive_int, print_json


def cmd_sweep(a: argparse.Namespace) -> int:
    extra = {"executed_dir": Path(a.executed_dir)} if a.executed_dir else {}
    grid = sweep.build_grid(a.profile, runs_root=a.run_dir, data_dir=a.data_root, device=a.device,
                            seed=a.seed, **extra)
    jobs = sweep.select(grid, a.only, a.shard)
    if a.list:
        if a.json:
            print_json(sweep.describe(jobs))
        else:
            for d in sweep.describe(jobs):
                deps = f" (after {', '.join(d['depends_on'])})" if d["depends_on"] else ""
                print(f"{d['state']:8s} {d['job']}{deps}")
        return 0
    records = sweep.run_sweep(jobs, parallel=a.parallel, force=a.force, all_jobs=grid)
    if a.json:
        print_json(records)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("sweep", help="run the whole experiment grid (every notebook) via papermill")
    p.add_argument("--profile", default="quick", help="smoke, quick (default) or paper")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--only", default=None, help="comma-separated globs on job names, e.g. '01_*'")
    p.add_argument("--shard", default=None, help="'i/n': every n-th independent job starting at i")
    p.add_argument("--parallel", type=positive_int, default=1, help="notebooks executed at once")
    p.add_argument("--force", action="store_true", help="re-execute finished jobs")
    p.add_argument("--list", action="store_true", help="list the jobs, their state and dependencies")
    p.add_argument("--run-dir", type=path, default=None)
    p.add_argument("--executed-dir", type=path, default=None,
                   help="where the book's executed notebooks go (default book/executed)")
    p.add_argument("--data-root", type=path, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sweep)
