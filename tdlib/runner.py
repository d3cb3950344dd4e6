"""Execute notebooks with papermill (its Python API: one process, no CLI start-up per run).

* Parameters are validated against the notebook's parameter record
  (:func:`tdlib.experiments.params.params_for_notebook`) before a kernel starts: an unknown name
  (a typo such as ``PROFLE``) or a bad value is an error here, not a warning while the notebook
  runs at its defaults.
* Kernels talk to us over IPC sockets (no "running over TCP without encryption" warnings), each
  kernel on socket paths of its own (parallel sweeps).
* The executed copy is written atomically from a unique temporary file; a failed run keeps its
  partial copy as ``<output>.failed.ipynb``; Ctrl-C leaves no temporary file behind, kills the
  kernel this call started (and waits for it, so nothing it prints follows the caller's last line)
  and gives the caller back its own Ctrl-C handler (nbclient's asyncio handlers reset it).
* In the executed copy the source ``parameters`` cell is hidden (``remove-cell``) when papermill
  injected values: the page shows its parameters once, in the injected cell.

Also the hygiene rules the tests enforce on source notebooks: stored without outputs, exactly one
cell tagged ``parameters``, tags from :data:`ALLOWED_TAGS` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tdlib.errors import TdlibError
from tdlib.experiments.params import params_for_notebook
from tdlib.io import atomic_write_text

__all__ = ["ALLOWED_TAGS", "NotebookError", "NotebookInterrupted", "execute_notebook", "hygiene_problems",
           "kill_running_kernels", "validate_parameters"]

#: Cell tags a notebook may carry (a misspelt tag would be silently ignored by the tools).
ALLOWED_TAGS = frozenset({
    "parameters", "injected-parameters", "hide-input", "hide-output", "hide-cell",
    "remove-input", "remove-output", "remove-cell", "skip-execution", "raises-exception",
})

DEFAULT_CELL_TIMEOUT = 900


class NotebookError(TdlibError, RuntimeError):
    """A notebook failed to execute; the message names the notebook, the cell and the error."""


class NotebookInterrupted(NotebookError):
    """A notebook ended by :func:`kill_running_kernels` (Ctrl-C in another thread), not failed."""


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


#: Kernel managers of the notebooks executing now, in any thread (:func:`kill_running_kernels`).
_RUNNING: list[Any] = []
#: Those of them killed by :func:`kill_running_kernels` (their notebooks were interrupted, not
#: failed: no ``.failed.ipynb`` is kept for them).
_KILLED: list[Any] = []
_RUNNING_LOCK = threading.Lock()


def kill_running_kernels() -> None:
    """Kill the kernels of every notebook executing now (Ctrl-C in a parallel sweep: the other
    threads' notebooks then end at once instead of running to their last cell)."""
    with _RUNNING_LOCK:
        managers = list(_RUNNING)
        _KILLED.extend(managers)
    _kill_kernels(managers)


def _kernel_manager_class(started: list[Any]) -> type[Any]:
    """A kernel manager class whose instances append themselves to ``started`` and ``_RUNNING``."""
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        """A kernel on local IPC sockets of its own in the temporary folder (no TCP ports)."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.transport = "ipc"
            # a socket-path prefix of its own: with the default ("kernel-ipc" in the working
            # directory) two kernels started at once (``sweep --parallel``) pick the same paths and
            # receive each other's messages ("Invalid Signature", then a kernel that never answers)
            self.ip = os.path.join(tempfile.gettempdir(), f"tdlib-kernel-{uuid.uuid4().hex[:12]}")
            started.append(self)
            with _RUNNING_LOCK:
                _RUNNING.append(self)

    return IPCKernelManager


def _kill_kernels(managers: list[Any]) -> None:
    """Kill every kernel in ``managers`` still running, wait until its process has ended and
    remove its connection and socket files.

    Only plain process and file operations: after Ctrl-C, nbclient's own graceful shutdown may have
    been cut short (a kernel that outlives us writes "Parent appears to have exited" after our last
    line), and any jupyter call that runs its event loop again would resume the interrupted tasks.
    """
    for km in managers:
        proc = getattr(getattr(km, "provisioner", None), "process", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(timeout=10)
        with contextlib.suppress(Exception):
            km.cleanup_connection_file()
            km.cleanup_ipc_files()


def _quiet_interrupted_loop() -> None:
    """Cancel what Ctrl-C left of nbclient's tasks in this thread's event loop, and keep their
    "Task exception was never retrieved" / "Task was destroyed" reports (asyncio's exception
    handler) off the terminal: the interrupt has already been reported once."""
    try:
        from jupyter_core.utils import ensure_event_loop

        loop = ensure_event_loop()
    except Exception:
        return
    if loop.is_running() or loop.is_closed():
        return
    loop.set_exception_handler(lambda _loop, _context: None)
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        with contextlib.suppress(BaseException):
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


@contextlib.contextmanager
def _own_sigint() -> Iterator[None]:
    """Give the caller's SIGINT handler back on the way out (asyncio resets it to the default)."""
    main = threading.current_thread() is threading.main_thread()
    saved = signal.getsignal(signal.SIGINT) if main else None
    try:
        yield
    finally:
        if main and saved is not None and signal.getsignal(signal.SIGINT) is not saved:
            signal.signal(signal.SIGINT, saved)


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
    kernels: list[Any] = []
    killed = False
    try:
        with _own_sigint(), _environment(env):
            try:
                pm.execute_notebook(
                    str(src), str(tmp), parameters=params, cwd=str(cwd or src.parent),
                    progress_bar=progress, execution_timeout=cell_timeout, kernel_name="python3",
                    log_output=False, kernel_manager_class=_kernel_manager_class(kernels),
                    # the kernel is killed, not asked to shut down: every output is already in
                    # the notebook, and a kernel asked while a cell runs (Ctrl-C) prints tracebacks
                    shutdown_kernel="immediate",
                )
            finally:
                _kill_kernels(kernels)
                with _RUNNING_LOCK:
                    killed = any(km in _KILLED for km in kernels)
                    _RUNNING[:] = [km for km in _RUNNING if km not in kernels]
                    _KILLED[:] = [km for km in _KILLED if km not in kernels]
        nb = nbformat.read(tmp, as_version=4)
        _hide_source_parameters(nb)
        atomic_write_text(out, nbformat.writes(nb))
    except KeyboardInterrupt:
        _quiet_interrupted_loop()  # the kernels are dead by now: their tasks end at once
        raise
    except Exception as exc:
        if killed:  # Ctrl-C in another thread ended this notebook: nothing failed here
            raise NotebookInterrupted(f"notebook {src.name} interrupted") from exc
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
