"""Where experiment results live, and how the Results page finds them.

A result is stored under its identity, (experiment, profile, hash of its parameters):
``<runs>/results/<experiment>/<profile>-<params hash>.json``. Running a notebook twice with other
parameters (say another ``DATASETS``) keeps both results; :func:`load_results` returns every result
of a profile and the claims engine merges them. Files are written atomically.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tdlib.errors import ConfigError, ResultsError
from tdlib.experiments.records import record_from_json, record_to_json
from tdlib.io import default_runs_root, utc_now, write_json

__all__ = ["load_results", "params_hash", "result_path", "save_result", "source_hash"]

RESULTS_DIR = "results"


def params_hash(experiment: str, profile: str, params: Mapping[str, Any], length: int = 10) -> str:
    """Stable hash of an experiment's (resolved) parameters."""
    text = json.dumps({"experiment": experiment, "profile": profile, "params": dict(params)},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@functools.cache
def source_hash() -> str:
    """Hash of the tdlib sources (every ``*.py`` of the package), which produced a result."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        if "__pycache__" in p.parts:
            continue
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _root(runs_root: str | Path | None) -> Path:
    return Path(runs_root).expanduser() if runs_root is not None else default_runs_root()


def result_path(experiment: str, profile: str, phash: str,
                runs_root: str | Path | None = None) -> Path:
    """``<runs>/results/<experiment>/<profile>-<phash>.json``."""
    return _root(runs_root) / RESULTS_DIR / experiment / f"{profile}-{phash}.json"


def now() -> str:
    """UTC time stamp used in result identities."""
    return utc_now()


def save_result(record: Any, runs_root: str | Path | None = None) -> Path:
    """Write a result record (see :mod:`tdlib.experiments.records`) under its identity."""
    meta = record.meta
    path = result_path(meta.experiment, meta.profile, meta.params_hash, runs_root)
    return write_json(path, record_to_json(record))


def load_result(path: str | Path) -> Any:
    """Read one result record.

    Raises:
        ResultsError: the file is not JSON, or not a result record of this tdlib version; the
            message names the file and what to do.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        return record_from_json(data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ConfigError) as exc:
        raise ResultsError(
            f"cannot read result file {p}: {exc}. Delete it and rerun the notebook that wrote "
            f"it (its sweep job re-executes once the file is gone)"
        ) from exc


def load_results(profile: str, runs_root: str | Path | None = None,
                 experiment: str | None = None) -> list[Any]:
    """Every saved result of ``profile`` (optionally of one experiment), oldest first.

    Raises:
        ResultsError: a results file is damaged (the message names it).
    """
    base = _root(runs_root) / RESULTS_DIR
    pattern = f"{experiment}/{profile}-*.json" if experiment else f"*/{profile}-*.json"
    records = [load_result(p) for p in sorted(base.glob(pattern))]
    return sorted(records, key=lambda r: r.meta.created)
