"""What every notebook does first: validate its parameters, seed, set up plotting.

Papermill injects parameters as literals; a wrong type (``SEED = "zero"``) or value
(``PROFILE = "huge"``) fails here, in the first code cell, with one message naming the parameter.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tdlib.config import PROFILES, as_tuple
from tdlib.errors import ConfigError, check_name
from tdlib.io import default_runs_root, ensure_writable_dir
from tdlib.utils import seed_everything, select_device


@dataclass(frozen=True)
class NotebookContext:
    """Validated common parameters of a notebook."""

    profile: str
    seed: int
    data_dir: str | None
    runs_root: Path
    device: str
    params: dict[str, Any] = field(default_factory=dict)

    def table(self) -> Any:
        """The parameters this page ran with, as a pandas DataFrame (shown on every page)."""
        import pandas as pd

        return pd.DataFrame({"parameter": list(self.params), "value": [repr(v) for v in self.params.values()]}) \
            .set_index("parameter")


def _expect(name: str, value: Any, kind: type | tuple[type, ...], what: str) -> None:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(
            f"notebook parameter {name} must be {what}, got {value!r} ({type(value).__name__})"
        )


def names(name: str, value: Any, accepted: tuple[str, ...], kind: str) -> tuple[str, ...]:
    """Validate a list-of-names parameter (a list or a comma-separated string)."""
    if not isinstance(value, list | tuple | str):
        raise ConfigError(f"notebook parameter {name} must be a list of {kind} names, got {value!r}")
    items = as_tuple(value)
    if not items:
        raise ConfigError(f"notebook parameter {name} is empty; accepted: {', '.join(accepted)}")
    for item in items:
        check_name(kind, item, accepted)
    return items


def positive_int(name: str, value: Any, *, optional: bool = False) -> int | None:
    """Validate an integer parameter >= 1 (or None when ``optional``)."""
    if value is None and optional:
        return None
    _expect(name, value, int, "an integer >= 1" + (" or None" if optional else ""))
    if value < 1:
        raise ConfigError(f"notebook parameter {name} must be >= 1, got {value}")
    return int(value)


def init_notebook(
    *, profile: Any, seed: Any, data_dir: Any, run_dir: Any, device: Any, **extra: Any
) -> NotebookContext:
    """Validate the common parameters, seed everything, configure plotly for the book.

    Raises:
        ConfigError: a parameter of the wrong type or value.
    """
    _expect("PROFILE", profile, str, "one of " + ", ".join(PROFILES))
    check_name("profile", profile, PROFILES)
    _expect("SEED", seed, int, "an integer >= 0")
    if seed < 0:
        raise ConfigError(f"notebook parameter SEED must be >= 0, got {seed}")
    if data_dir is not None:
        _expect("DATA_DIR", data_dir, str, "a path string or None")
        os.environ["TDLIB_DATA"] = str(Path(data_dir).expanduser())
    if run_dir is not None:
        _expect("RUN_DIR", run_dir, str, "a path string or None")
    _expect("DEVICE", device, str, "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    select_device(device)  # fails early for an unavailable device
    runs = Path(run_dir).expanduser() if run_dir is not None else default_runs_root()
    ensure_writable_dir(runs)
    seed_everything(seed)
    try:
        import plotly.io as pio

        # plotly figures survive into the static HTML of the book only with this renderer
        pio.renderers.default = "plotly_mimetype+notebook"
    except ImportError:  # pragma: no cover - plotly is a declared dependency
        pass
    params = {"PROFILE": profile, "SEED": seed, "DATA_DIR": data_dir, "RUN_DIR": run_dir,
              "DEVICE": device, **extra}
    return NotebookContext(profile, seed, data_dir, runs, device, params)
