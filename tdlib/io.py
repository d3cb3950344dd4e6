"""Run folders and atomic, crash-safe result files.

Every file tdlib writes goes through :func:`atomic_write_bytes` (temp file in the same folder,
fsync, ``os.replace``), so a crash never leaves a half-written file that a later run trusts.
Run folders are keyed by experiment name and the config hash; a ``DONE.json`` marker written last
tells that a run finished and may be reused.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tdlib.errors import RunDirError

DONE_MARKER = "DONE.json"
DEFAULT_RUNS_ENV = "TDLIB_RUNS"


def default_runs_root() -> Path:
    """Root of all run folders: ``$TDLIB_RUNS``; else ``runs/`` of the source checkout tdlib is
    imported from (whatever the working directory, e.g. a notebook's folder); else
    ``~/.cache/tdlib/runs``."""
    env = os.environ.get(DEFAULT_RUNS_ENV)
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout / "runs"
    return Path("~/.cache/tdlib/runs").expanduser()


def ensure_writable_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) and check that files can be written there.

    Raises:
        RunDirError: the folder cannot be created or is not writable.
    """
    p = Path(path).expanduser()
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise RunDirError(
            f"results folder {str(p)!r} is not writable ({exc.strerror or exc}); "
            "choose another with --run-dir / RUN_DIR or $TDLIB_RUNS"
        ) from exc
    return p


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (unique temp file + fsync + rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return p


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def to_json(obj: Any) -> str:
    """Serialise to pretty JSON; numpy/torch scalars and arrays become lists, NaN/inf stay JSON-5 style."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as JSON atomically."""
    return atomic_write_text(path, to_json(obj))


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file written by :func:`write_json`."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_csv(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write a list of dicts as CSV atomically (columns = union of keys, in first-seen order)."""
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def run_dir(root: str | os.PathLike[str] | None, experiment: str, key: str) -> Path:
    """Folder of one run: ``<root>/<experiment>/<key>`` (not created)."""
    base = Path(root).expanduser() if root is not None else default_runs_root()
    return base / experiment / key


def is_done(folder: str | os.PathLike[str]) -> bool:
    """True when the run in ``folder`` finished (its marker was written last)."""
    return (Path(folder) / DONE_MARKER).is_file()


def mark_done(folder: str | os.PathLike[str], summary: Mapping[str, Any]) -> Path:
    """Write the completion marker (atomically, last)."""
    return write_json(Path(folder) / DONE_MARKER, dict(summary))


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Exclusive advisory lock on a run folder, so two processes never run the same config at once.

    The second process waits until the first releases the lock (then typically finds the run done
    and reuses it).
    """
    import fcntl

    p = ensure_writable_dir(folder)
    with open(p / ".lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
