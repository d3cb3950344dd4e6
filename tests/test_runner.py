"""Faults and bad input across the CLI and notebooks: nothing lost, one clear error each."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tdlib.config import run_config
from tdlib.errors import ConfigError
from tdlib.runner import execute_notebook
from tdlib.training import load_checkpoint, run_folder

REPO = Path(__file__).resolve().parent.parent
TRAIN = [sys.executable, "-m", "tdlib", "train", "--dataset", "mnist", "--backbone", "nin_light",
         "--variant", "bu", "--profile", "smoke", "--epochs", "3", "--device", "cpu", "--json"]


def _env(runs: Path) -> dict[str, str]:
    return {**os.environ, "TDLIB_RUNS": str(runs), "TDLIB_THREADS": "1"}


def test_kill_minus_nine_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    cfg = run_config("mnist", "nin_light", "bu", profile="smoke", epochs=3)
    # the uninterrupted reference: the same command, same environment (threads change float order)
    ref = subprocess.run(TRAIN, env=_env(tmp_path / "ref"), cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert ref.returncode == 0, ref.stderr
    reference = json.loads(ref.stdout)
    ref_weights = load_checkpoint(run_folder(cfg, 0, tmp_path / "ref") / "model.pt")["model"]

    runs = tmp_path / "killed"
    folder = run_folder(cfg, 0, runs)
    proc = subprocess.Popen(TRAIN, env=_env(runs), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        hist = folder / "history.json"
        if hist.is_file() and len(json.loads(hist.read_text())) >= 1:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)  # mid-epoch 2 (epoch 1 is checkpointed)
    proc.wait()
    assert not (folder / "DONE.json").exists()
    ckpt = load_checkpoint(folder / "checkpoint.pt")
    assert 1 <= ckpt["epoch"] < 3

    out = subprocess.run(TRAIN, env=_env(runs), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    resumed = json.loads(out.stdout)
    assert resumed["test_accuracy"] == reference["test_accuracy"]
    weights = load_checkpoint(folder / "model.pt")["model"]
    assert weights.keys() == ref_weights.keys()
    for k, v in ref_weights.items():
        assert torch.equal(weights[k], v), k


def test_two_processes_same_config_do_not_corrupt_each_other(tmp_path: Path) -> None:
    cmd = [*TRAIN[:TRAIN.index("--epochs") + 1], "1", "--device", "cpu", "--json"]
    procs = [subprocess.Popen(cmd, env=_env(tmp_path), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    results = [json.loads(o[0]) for o in outs]
    assert results[0]["test_accuracy"] == results[1]["test_accuracy"]
    assert sorted(r["reused"] for r in results) == [False, True]  # one trained, one waited and reused


def test_one_vocabulary() -> None:
    """Every layer uses the names of tdlib.names (one definition each)."""
    from tdlib import config, names
    from tdlib.models import layers, pyramid, spec

    assert set(spec.SPECS) == set(names.BACKBONES)
    assert config.DATASETS is names.DATASETS and config.PROTOCOLS is names.PROTOCOLS
    assert layers.MERGES is names.MERGES and pyramid.PYRAMIDS is names.PYRAMIDS
    assert spec.VARIANTS is names.VARIANTS and spec.BACKBONES is names.BACKBONES
    from tdlib.attacks import registry

    assert tuple(registry.REGISTRIES) == names.PROTOCOLS  # one registry per protocol
    assert set(registry.PAPER) == set(registry.MINIMAL) == set(names.ATTACKS)


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
