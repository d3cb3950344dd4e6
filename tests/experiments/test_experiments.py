"""Every experiment module on tiny real runs (smoke profile, a handful of images), the model
provider (zoo or training) and the sweep's states and order."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from tdlib.bitstring import unbits
from tdlib.errors import ConfigError
from tdlib.experiments import classification as exp1
from tdlib.experiments import explain as exp3
from tdlib.experiments import robustness as exp2
from tdlib.experiments.claims import Verdict
from tdlib.experiments.models import provide
from tdlib.experiments.params import Common, Exp1Params, Exp2Params, LocalisationParams, ScaleParams
from tdlib.experiments.store import load_results, save_result

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def runs(tmp_path: Path) -> str:
    return str(tmp_path / "runs")


def test_exp1_records_per_image_correctness_and_guards_smoke_models(runs: str) -> None:
    params = Exp1Params.from_values(PROFILE="smoke", RUN_DIR=runs, DATASETS=["mnist"],
                                    BACKBONES=["lenetfc"], DEVICE="cpu")
    run = exp1.run(params, progress=False)
    assert [e.model.variant for e in run.record.evals] == ["bu", "td"]
    for e in run.record.evals:
        assert unbits(e.correct).shape == (100,) and e.test_set == "mnist test, 10/class, split seed 0"
        assert e.accuracy == pytest.approx(e.model.test_accuracy)
    rows = run.record.claim_rows()
    assert len(rows) == 1 and rows[0].verdict is Verdict.NOT_CLAIM_GRADE
    table = exp1.accuracy_table(run.record.evals)
    assert {r["variant"] for r in table} == {"bu", "td"} and all(r["source"] == "trained" for r in table)
    assert len(exp1.history_rows(run.runs)) == 2  # one epoch each


def test_exp2_and_the_scale_study_on_a_few_images(runs: str) -> None:
    params = Exp2Params.from_values(PROFILE="smoke", RUN_DIR=runs, DATASETS=["mnist"], BACKBONES=["lenetfc"],
                                    ATTACKS=["gaussian_blur", "contrast_reduction"], WHITEBOX=[],
                                    N_SAMPLES=6, DEVICE="cpu")
    run = exp2.run(params, progress=False)
    assert {(e.model.variant, e.attack) for e in run.record.evals} == {
        (v, a) for v in ("bu", "td") for a in ("gaussian_blur", "contrast_reduction")}
    assert all(len(e.l2) == 6 and e.protocol == "paper" for e in run.record.evals)
    assert len({e.images for e in run.record.evals}) == 1  # the same images for BU and TD
    assert all(r.verdict in (Verdict.NOT_CLAIM_GRADE,) for r in run.record.claim_rows())
    # contrast reduction belongs to no family of the paper's claims: shown, never voting
    assert {r.scope for r in run.record.attack_rows()} == {"mnist · lenetfc · gaussian_blur"}
    scales = exp2.run_scales(ScaleParams.from_values(PROFILE="smoke", RUN_DIR=runs, DATASETS=["mnist"],
                                                     ATTACKS=["contrast_reduction"], N_SAMPLES=6,
                                                     DEVICE="cpu"), progress=False)
    (ev,) = scales.record.evals
    assert set(ev.subsets) == {"clean", *exp2.SCALE_SUBSETS} and all(len(b) == 6 for b in ev.subsets.values())
    assert set(ev.removal) == {"none", "high", "medium"}
    assert {r["subset"] for r in scales.accuracy_rows()} == set(ev.subsets)


def test_localisation_marks_the_final_map_and_the_sensitivity_protocol(runs: str) -> None:
    params = LocalisationParams.from_values(PROFILE="smoke", RUN_DIR=runs, DATASETS=["mnist"],
                                            N_IMAGES=6, PRETRAINED=False, DEVICE="cpu")
    run = exp3.run_localisation(params, progress=False)
    for v in ("bu", "td"):
        evals = [e for e in run.record.evals if e.model.variant == v]
        final = [e for e in evals if e.final]
        assert {(e.stage, e.normalisation, e.target) for e in final} == {
            ("act_3", "paper", "softmax"), ("act_3", "library", "logit")}
        assert {e.stage for e in evals} == {"act_1", "act_2", "act_3", "act_4"}
        assert all(len(e.energy) == 6 and len(e.pointing) == 6 for e in evals)
    agg = exp3.aggregate(run.record)
    assert {r["protocol"] for r in agg} == {"paper/softmax", "library/logit"}


def test_provide_takes_zoo_models_or_trains(runs: str) -> None:
    common = Common(profile="quick", run_dir=runs, device="cpu")
    pm = provide("mnist", "lenetfc", "bu", common, pretrained=True)
    assert pm.ref.source == "zoo" and pm.ref.test_images == 10_000 and not pm.model.training
    assert len(pm.data.test) == 10_000 and pm.key.startswith("zoo-mnist-lenetfc-bu-s0-")
    with pytest.raises(ConfigError, match="PRETRAINED=False"):
        provide("mnist", "lenetfc", "bu", common, pretrained=True, rep=7, require_zoo=True)
    smoke = Common(profile="smoke", run_dir=runs, device="cpu")
    trained = provide("mnist", "lenetfc", "bu", smoke, pretrained=True, rep=7, progress=False)
    assert trained.ref.source == "trained" and trained.ref.seed == 7  # no zoo seed 7: trained instead


def test_two_notebook_runs_with_other_datasets_both_reach_the_claims(tmp_path: Path) -> None:
    from tdlib.cli import main
    from tdlib.runner import execute_notebook

    runs = tmp_path / "runs"
    for d in ("mnist", "fashion_mnist"):
        execute_notebook(REPO / "notebooks" / "01_classification.ipynb", tmp_path / f"01-{d}.ipynb",
                         {"PROFILE": "smoke", "RUN_DIR": str(runs), "DATASETS": [d], "BACKBONES": ["lenetfc"],
                          "DEVICE": "cpu"}, cell_timeout=600)
    assert len(load_results("smoke", runs, "exp1")) == 2
    out = tmp_path / "claims.json"
    with open(out, "w") as fh:
        saved, sys.stdout = sys.stdout, fh
        try:
            assert main(["claims", "--profile", "smoke", "--runs-dir", str(runs), "--json"]) == 0
        finally:
            sys.stdout = saved
    rows = [r for r in json.loads(out.read_text())["rows"] if r["claim"] == "accuracy"]
    assert {r["scope"] for r in rows} == {"mnist · lenetfc · td", "fashion_mnist · lenetfc · td"}
    assert {r["verdict"] for r in rows} == {"not claim-grade"}  # smoke models decide nothing


# --------------------------------------------------------------------------------- the sweep
def _grid(tmp_path: Path, names: tuple[str, ...]) -> list[Any]:
    from tdlib.sweep import build_grid

    nbs = tmp_path / "notebooks"
    nbs.mkdir(exist_ok=True)
    for n in names:
        shutil.copy2(REPO / "notebooks" / f"{n}.ipynb", nbs / f"{n}.ipynb")
    return build_grid("smoke", notebooks_dir=nbs, executed_dir=tmp_path / "executed",
                      runs_root=str(tmp_path / "runs"), device="cpu")


def test_results_page_runs_after_its_dependencies_also_in_parallel_and_shards(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tdlib.runner
    from tdlib.sweep import run_sweep, select

    order: list[str] = []

    def fake(src: Path, out: Path, params: dict[str, Any], **kw: Any) -> Path:
        time.sleep(0.2 if "01" in Path(src).name else 0.0)
        order.append(Path(out).stem)
        for path in (Path(out), Path(tdlib.runner.validate_parameters(src, params).result_path())):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")  # the executed copy and the result file the page would write
        return Path(out)

    monkeypatch.setattr(tdlib.runner, "execute_notebook", fake)
    jobs = _grid(tmp_path, ("01_classification", "03_scale_perturbation", "06_results"))
    assert {j.name: j.state() for j in jobs} == {j.name: "pending" for j in jobs}
    run_sweep(select(jobs, shard="0/2"), parallel=2, all_jobs=jobs, log=lambda m: None)
    assert order == ["01_classification"]  # 06 waits for 03, the other shard's job
    run_sweep(select(jobs, shard="1/2"), parallel=2, all_jobs=jobs, log=lambda m: None)
    assert order == ["01_classification", "03_scale_perturbation", "06_results"]
    order.clear()
    run_sweep(jobs, parallel=2, force=True, log=lambda m: None)
    assert order[-1] == "06_results" and sorted(order[:2]) == ["01_classification", "03_scale_perturbation"]


def test_job_states_follow_sources_results_and_run_folders(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import tdlib.experiments.store as store
    from tdlib.io import write_json

    (job,) = [j for j in _grid(tmp_path, ("01_classification",))]
    assert job.state() == "pending"
    job.output.parent.mkdir(parents=True)
    job.output.write_text("{}")
    assert job.state() == "stale"  # no stamp
    run_folder = tmp_path / "runs" / "train" / "mnist-lenetfc-bu-x" / "rep0"
    run_folder.mkdir(parents=True)
    (run_folder / "DONE.json").write_text("{}")
    write_json(job.stamp_path(), {"stamp": job.stamp(), "runs": [str(run_folder)]})
    job.result_path().parent.mkdir(parents=True, exist_ok=True)
    job.result_path().write_text("{}")
    assert job.state() == "done"
    shutil.rmtree(run_folder.parent)  # "reset a run"
    assert job.state() == "stale"
    (run_folder).mkdir(parents=True)
    (run_folder / "DONE.json").write_text("{}")
    assert job.state() == "done"
    monkeypatch.setattr(store, "source_hash", lambda: "another tdlib")
    assert job.state() == "stale"  # the library changed


def test_results_page_is_stale_when_a_result_of_its_profile_changes(tmp_path: Path) -> None:
    from tests.experiments.test_claims import exp1_record

    (job,) = _grid(tmp_path, ("06_results",))
    before = job.stamp()
    rec = exp1_record(0.0, 50)
    rec = type(rec)(type(rec.meta)("exp1", "smoke", {}, "abc", "2026"), rec.evals)
    save_result(rec, tmp_path / "runs")
    assert job.stamp() != before


def _kernel_is_executing(executed: Path) -> bool:
    """Whether papermill's in-progress copy shows a code cell running or done (the kernel is up)."""
    for tmp in executed.glob(".*.running.ipynb"):
        try:
            nb = json.loads(tmp.read_text())
        except (OSError, ValueError):
            continue  # not written yet, or caught mid-write
        for cell in nb.get("cells", []):
            status = cell.get("metadata", {}).get("papermill", {}).get("status")
            if cell.get("cell_type") == "code" and status in ("running", "completed"):
                return True
    return False


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_ends_a_sweep_cleanly(tmp_path: Path, presses: int) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    executed = tmp_path / "executed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tdlib", "sweep", "--profile", "smoke", "--only", "01_classification",
         "--run-dir", str(tmp_path / "runs"), "--executed-dir", str(executed), "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
        # as in a terminal: a test run started in the background (nohup, `cmd &`) inherits SIGINT
        # ignored, and Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None
    assert "01_classification: running" in proc.stdout.readline()
    # interrupt as soon as the kernel executes cells (papermill's copy records a cell as running or
    # done): a fixed sleep raced a fast machine, where the whole smoke notebook ends within seconds
    deadline = time.monotonic() + 120
    while not _kernel_is_executing(executed) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before the kernel executed a cell"
    proc.send_signal(signal.SIGINT)
    if presses == 2:  # an impatient second Ctrl-C while the first unwinds: still status 130
        time.sleep(0.3)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Traceback" not in out
    assert err.strip().splitlines()[-1].startswith("interrupted:")
    leftovers = [p.name for p in executed.glob("*")] if executed.exists() else []
    assert not [n for n in leftovers if n.endswith(".running.ipynb")], leftovers
    assert not (executed / "01_classification.ipynb").exists()


def test_asking_for_more_test_images_than_exist_is_an_error() -> None:
    from types import SimpleNamespace

    from tdlib.data import ArrayDataset
    from tdlib.experiments.robustness import test_sample

    data = SimpleNamespace(test=ArrayDataset(torch.zeros(5, 1, 2, 2, dtype=torch.uint8),
                                             torch.arange(5)))
    assert len(test_sample(data, 100, 0)[1]) == 5  # a profile's default takes what there is
    with pytest.raises(ConfigError, match="test set holds 5"):
        test_sample(data, 6, 0, strict=True)
    assert len(test_sample(data, 5, 0, strict=True)[1]) == 5
