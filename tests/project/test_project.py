"""Project-level contracts: pins agree, notebooks are clean, the CLI lists its commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tdlib.runner import hygiene_problems

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_environment_yml_matches_requirements() -> None:
    out = subprocess.run([sys.executable, str(REPO / "scripts/gen_environment.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_torch_pins_are_exact() -> None:
    req = (REPO / "requirements.txt").read_text()
    assert "torch==2.14.1" in req and "torchvision==0.29.1" in req


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_hygiene(path: Path) -> None:
    assert hygiene_problems(path) == []


def test_notebook_names_are_snake_case() -> None:
    for p in NOTEBOOKS:
        stem = p.stem
        assert stem[:2].isdigit() and stem[2] == "_" and stem == stem.lower() and " " not in stem


def test_hygiene_detects_problems(tmp_path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    c1 = nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]})
    c2 = nbformat.v4.new_code_cell("x", metadata={"tags": ["paramters"]})
    c2.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "1"}, execution_count=1)]
    nb.cells = [c1, c2]
    p = tmp_path / "bad.ipynb"
    nbformat.write(nb, p)
    problems = hygiene_problems(p)
    assert any("unknown tags ['paramters']" in s for s in problems)
    assert any("stored with outputs" in s for s in problems)
    nb.cells = [c2]
    nbformat.write(nb, p)
    assert any("0 cells tagged 'parameters'" in s for s in hygiene_problems(p))


def test_cli_help_lists_subcommands() -> None:
    out = subprocess.run([sys.executable, "-m", "tdlib", "--help"], capture_output=True,
                         text=True, cwd=REPO)
    assert out.returncode == 0
    for cmd in ("models", "train", "robustness", "explain", "sweep"):
        assert cmd in out.stdout


def test_import_has_no_side_effects() -> None:
    code = (
        "import random, torch, numpy as np; s = torch.get_rng_state(); r = random.getstate();"
        "import tdlib, tdlib.config, tdlib.data, tdlib.io, tdlib.utils, tdlib.training;"
        "assert torch.equal(s, torch.get_rng_state()) and r == random.getstate();"
        "print(torch.get_num_threads())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
