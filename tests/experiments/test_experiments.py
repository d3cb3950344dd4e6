"""Every experiment module on tiny real runs (smoke profile, a handful of images) and the model
provider (zoo or training). The sweep's states and order: tests/test_sweep.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

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
from tdlib.experiments.store import load_results

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


def test_zoo_curves_carry_train_and_validation_accuracy_and_plot_both() -> None:
    from types import SimpleNamespace

    from tdlib import plots

    hist = [{"epoch": e, "val_accuracy": 0.5 + e / 10, "train_accuracy": 0.6 + e / 10} for e in (1, 2, 3)]
    entries = [SimpleNamespace(dataset="cifar10_aug", backbone="resnet32", variant=v, seed=0, history=hist)
               for v in ("bu", "td")]
    rows = exp1.zoo_history_rows(entries)
    assert len(rows) == 6 and rows[0]["train_accuracy"] == pytest.approx(0.7)
    fig = plots.learning_curves(rows, second="train_accuracy")
    names = [t.name for t in fig.data]
    assert names == ["resnet32/bu", "resnet32/bu (train accuracy)", "resnet32/td", "resnet32/td (train accuracy)"]
    assert list(fig.data[1].y) == pytest.approx([70.0, 80.0, 90.0])
    assert len(plots.learning_curves(rows).data) == 2  # without ``second``: validation only
