"""Execute notebooks with papermill (Python API: one process, no ~4 s CLI start-up per run).

Also the notebook hygiene rules the tests enforce: stored without outputs, exactly one cell tagged
``parameters``, tags from :data:`ALLOWED_TAGS` only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tdlib.errors import TdlibError
from tdlib.io import atomic_write_text

#: Cell tags a notebook may carry (a misspelt tag would be silently ignored by the tools).
ALLOWED_TAGS = frozenset({
    "parameters", "injected-parameters", "hide-input", "hide-output", "hide-cell",
    "remove-input", "remove-output", "remove-cell", "skip-execution", "raises-exception",
})

DEFAULT_CELL_TIMEOUT = 900


class NotebookError(TdlibError, RuntimeError):
    """A notebook failed to execute; the message names the notebook, the cell and the error."""


def execute_notebook(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    parameters: Mapping[str, Any] | None = None,
    *,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    cwd: str | os.PathLike[str] | None = None,
    progress: bool = False,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Run ``source`` with ``parameters`` injected and write the executed copy to ``output``.

    The executed copy is written atomically; a failing cell raises :class:`NotebookError` (the
    partially executed copy is still written next to ``output`` with suffix ``.failed.ipynb`` for
    inspection).

    Args:
        cell_timeout: seconds allowed per cell (never unlimited).
        cwd: working directory of the kernel (default: the notebook's folder).
        env: environment variables set for the kernel while it runs.
    """
    import nbformat
    import papermill as pm

    src = Path(source)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".running.ipynb")
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        pm.execute_notebook(
            str(src), str(tmp), parameters=dict(parameters or {}),
            cwd=str(cwd or src.parent), progress_bar=progress,
            execution_timeout=cell_timeout, kernel_name="python3", log_output=False,
        )
    except Exception as exc:
        failed = out.with_suffix(".failed.ipynb")
        if tmp.exists():
            os.replace(tmp, failed)
        raise NotebookError(
            f"notebook {src.name} failed with parameters {dict(parameters or {})}: "
            f"{_short(exc)} (executed copy: {failed})"
        ) from exc
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    nb = nbformat.read(tmp, as_version=4)
    atomic_write_text(out, nbformat.writes(nb))
    tmp.unlink(missing_ok=True)
    return out


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    tail = [ln for ln in text if ln.strip()][-3:]
    return " | ".join(tail) if tail else type(exc).__name__


def hygiene_problems(path: str | os.PathLike[str]) -> list[str]:
    """Problems of a source notebook: outputs stored, parameters cell count, unknown tags."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    name = Path(path).name
    problems: list[str] = []
    n_params = 0
    for i, cell in enumerate(nb.cells):
        tags = set(cell.get("metadata", {}).get("tags", []))
        unknown = tags - ALLOWED_TAGS
        if unknown:
            problems.append(f"{name} cell {i}: unknown tags {sorted(unknown)}")
        if "parameters" in tags:
            n_params += 1
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(f"{name} cell {i}: stored with outputs; strip them")
    if n_params != 1:
        problems.append(f"{name}: {n_params} cells tagged 'parameters' (exactly 1 required)")
    return problems
