"""tdlib.runner: a wrong notebook parameter is one clear error before any kernel starts, and
through papermill's own API the notebook's first cell refuses a misspelt one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tdlib.errors import ConfigError
from tdlib.runner import execute_notebook

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"SEED": "zero"}, "notebook parameter SEED must be an integer"),
        ({"PROFILE": "huge"}, "unknown profile 'huge'"),
        ({"PROFILE": 3}, "notebook parameter PROFILE must be one of"),
    ],
)
def test_wrong_notebook_parameter_is_refused_before_a_kernel_starts(
        tmp_path: Path, params: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        execute_notebook(REPO / "notebooks" / "06_results.ipynb", tmp_path / "out.ipynb", params,
                         cell_timeout=120)
    assert fragment in str(info.value)
    assert list(tmp_path.iterdir()) == []  # no executed copy, no temporary file


def test_papermill_itself_fails_a_misspelt_parameter_in_the_first_cell(tmp_path: Path) -> None:
    """Run through papermill's own API (not tdlib's runner), a typo such as ``PROFLE`` is
    injected as a new variable; the notebook's first code cell refuses it instead of running
    at the defaults."""
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(str(REPO / "notebooks" / "06_results.ipynb"), str(tmp_path / "out.ipynb"),
                            parameters={"PROFLE": "smoke", "RUN_DIR": str(tmp_path / "runs")},
                            progress_bar=False, kernel_name="python3", execution_timeout=120)
    assert info.value.ename == "ConfigError" and "PROFLE" in info.value.evalue
