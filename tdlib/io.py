"""Run folders and atomic, crash-safe result files.

Every file tdlib writes goes through :func:`atomic_write_bytes` (temp file in the same folder,
fsync, ``os.replace``), so a crash never leaves a half-written file that a later run trusts.
Run folders are keyed by experiment name and the config hash; a ``DONE.json`` marker written last
tells that a run finished and may be reused.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import errno
import fcntl
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tdlib.errors import DiskFullError, ResultsError, RunDirError

DONE_MARKER = "DONE.json"
DEFAULT_RUNS_ENV = "TDLIB_RUNS"


def default_runs_root() -> Path:
    """Root of all run folders: ``$TDLIB_RUNS``; else ``runs/`` of the source checkout tdlib is
    imported from (whatever the working directory, e.g. a notebook's folder); else
    ``~/.cache/tdlib/runs``."""
    env = os.environ.get(DEFAULT_RUNS_ENV, "").strip()
    if env:  # an empty $TDLIB_RUNS counts as unset, never as the current directory
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout / "runs"
    return Path("~/.cache/tdlib/runs").expanduser()


_FIX_DIR = "choose another with --run-dir / RUN_DIR or $TDLIB_RUNS"
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # disk full, quota exceeded, file-size limit


def utc_now() -> str:
    """UTC time stamp (ISO 8601, seconds) for manifests and result identities."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _checked_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path; an empty (or blank) one is refused instead of meaning the current
    directory."""
    if not str(os.fspath(path)).strip():
        raise RunDirError(
            "the results folder is an empty path (it would mean the current directory); give a "
            f"folder, or leave --run-dir / RUN_DIR unset for the default ({default_runs_root()})"
        )
    return Path(path).expanduser()


def ensure_writable_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) and check that files can be written there.

    Raises:
        RunDirError: the path is empty, or the folder cannot be created or is not writable.
    """
    p = _checked_path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        if exc.errno in _FULL:
            raise _disk_full(p, exc) from exc
        raise RunDirError(
            f"results folder {str(p)!r} is not writable ({exc.strerror or exc}); {_FIX_DIR}"
        ) from exc
    return p


def _disk_full(path: Path, exc: OSError) -> DiskFullError:
    if exc.errno == errno.EFBIG:
        cause = ("the file would exceed the file-size limit of this process or file system "
                 "(see `ulimit -f`)")
        fix = "Raise the limit (e.g. `ulimit -f unlimited`)"
    else:
        cause = exc.strerror or "no space left on device"
        fix = "Free some space (or raise the quota)"
    return DiskFullError(
        f"cannot write {str(path)!r}: {cause} (errno {exc.errno}); the previous version of the "
        f"file, if any, is intact. {fix} and rerun: finished work is kept; or {_FIX_DIR}"
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (unique temp file + fsync + rename).

    On any failure the temp file is removed and an existing file at ``path`` is left intact.

    Raises:
        DiskFullError: the disk or the quota is full, or the file-size limit is reached
            (``ENOSPC`` / ``EDQUOT`` / ``EFBIG``).
        OSError: any other failure of the write.
    """
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        if exc.errno in _FULL:
            raise _disk_full(p, exc) from exc
        raise
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, p)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in _FULL:
            raise _disk_full(p, exc) from exc
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


def read_json(
    path: str | os.PathLike[str],
    *,
    expect: type | tuple[type, ...] | None = None,
    fix: str | None = None,
) -> Any:
    """Read a JSON file written by :func:`write_json`.

    Args:
        path: the file.
        expect: the type(s) the top-level value must have (e.g. ``dict``); ``None``: any.
        fix: what the user should do if the file is damaged (ends the error message); default:
            restore the file or delete it so that it is recomputed.

    Raises:
        FileNotFoundError: the file does not exist.
        ResultsError: the file is not UTF-8 JSON (truncated, hand-edited, another format) or its
            top-level value is not of type ``expect``; the message names the file.
    """
    p = Path(path)
    todo = fix or "restore it, or delete it so that tdlib recomputes it"
    try:
        with open(p, encoding="utf-8") as fh:
            obj = json.load(fh)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ResultsError(
            f"{str(p)!r} is not valid JSON{where} (truncated, hand-edited or not written by "
            f"tdlib: {exc.msg if isinstance(exc, json.JSONDecodeError) else exc.reason}); {todo}"
        ) from exc
    if expect is not None and not isinstance(obj, expect):
        names = " or ".join(t.__name__ for t in (expect if isinstance(expect, tuple) else (expect,)))
        raise ResultsError(
            f"{str(p)!r} holds a JSON {type(obj).__name__} where a {names} was expected "
            f"(hand-edited or written by another tdlib version); {todo}"
        )
    return obj


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
    """Folder of one run: ``<root>/<experiment>/<key>`` (not created).

    Raises:
        RunDirError: ``root`` is an empty path (``--run-dir ""``), which would otherwise mean the
            current directory; ``None`` means the default root.
    """
    base = _checked_path(root) if root is not None else default_runs_root()
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
    p = ensure_writable_dir(folder)
    with open(p / ".lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
