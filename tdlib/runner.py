"""Execute notebooks with papermill (its Python API: one process, no CLI start-up per run).

* Parameters are validated against the notebook's parameter record
  (:func:`tdlib.experiments.params.params_for_notebook`) before a kernel starts: an unknown name
  (a typo such as ``PROFLE``) or a bad value is an error here, not a warning while the notebook
  runs at its defaults.
* Kernels talk to us over IPC sockets (no "running over TCP without encryption" warnings).
* The executed copy is written atomically from a unique temporary file; a failed run keeps its
  partial copy as ``<output>.failed.ipynb``; Ctrl-C leaves no temporary file behind.
* In the executed copy the source ``parameters`` cell is hidden (``remove-cell``) when papermill
  injected values: the page shows its parameters once, in the injected cell.

Also the hygiene rules the tests enforce on source notebooks: stored without outputs, exactly one
cell tagged ``parameters``, tags from :data:`ALLOWED_TAGS` only.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tdlib.errors import TdlibError
from tdlib.experiments.params import params_for_notebook
from tdlib.io import atomic_write_text

__all__ = ["ALLOWED_TAGS", "NotebookError", "execute_notebook", "hygiene_problems",
           "validate_parameters"]

#: Cell tags a notebook may carry (a misspelt tag would be silently ignored by the tools).
ALLOWED_TAGS = frozenset({
    "parameters", "injected-parameters", "hide-input", "hide-output", "hide-cell",
    "remove-input", "remove-output", "remove-cell", "skip-execution", "raises-exception",
})

DEFAULT_CELL_TIMEOUT = 900


class NotebookError(TdlibError, RuntimeError):
    """A notebook failed to execute; the message names the notebook, the cell and the error."""


def validate_parameters(source: str | os.PathLike[str], parameters: Mapping[str, Any]) -> Any:
    """Build the notebook's parameter record from ``parameters`` (fills defaults, checks all).

    Returns:
        the record, or ``None`` for a notebook without one.

    Raises:
        ConfigError: unknown names, wrong types or values, impossible combinations.
    """
    cls = params_for_notebook(Path(source).stem)
    if cls is None:
        return None
    return cls.from_notebook(dict(parameters))


def _kernel_manager_class() -> type[Any]:
    from jupyter_client.manager import KernelManager

    class IPCKernelManager(KernelManager):
        """A kernel on local IPC sockets next to its connection file (no TCP ports)."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.transport = "ipc"

    return IPCKernelManager


def _hide_source_parameters(nb: Any) -> None:
    tags = [set(c.get("metadata", {}).get("tags", [])) for c in nb.cells]
    if not any("injected-parameters" in t for t in tags):
        return
    for cell, t in zip(nb.cells, tags, strict=True):
        if "parameters" in t:
            cell.metadata["tags"] = sorted(t | {"remove-cell"})


@contextlib.contextmanager
def _environment(env: Mapping[str, str] | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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

    Args:
        cell_timeout: seconds allowed per cell (never unlimited).
        cwd: working directory of the kernel (default: the notebook's folder).
        env: environment variables set for the kernel while it runs.

    Raises:
        ConfigError: invalid parameters (before any kernel starts).
        NotebookError: a cell failed; the partially executed copy is kept next to ``output`` as
            ``<name>.failed.ipynb``.
    """
    import nbformat
    import papermill as pm

    src = Path(source)
    out = Path(output)
    params = dict(parameters or {})
    validate_parameters(src, params)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".running.ipynb", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with _environment(env):
            pm.execute_notebook(
                str(src), str(tmp), parameters=params, cwd=str(cwd or src.parent),
                progress_bar=progress, execution_timeout=cell_timeout, kernel_name="python3",
                log_output=False, kernel_manager_class=_kernel_manager_class(),
            )
        nb = nbformat.read(tmp, as_version=4)
        _hide_source_parameters(nb)
        atomic_write_text(out, nbformat.writes(nb))
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        failed = out.with_suffix(".failed.ipynb")
        if tmp.exists() and tmp.stat().st_size:
            os.replace(tmp, failed)
        raise NotebookError(
            f"notebook {src.name} failed with parameters {params}: {_short(exc)} "
            f"(executed copy: {failed})"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _short(exc: BaseException) -> str:
    """The failing cell's error in one line (papermill's message also quotes the source)."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        cell = getattr(exc, "exec_count", None)
        return f"{ename}: {evalue}" + (f" (cell [{cell}])" if cell is not None else "")
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
