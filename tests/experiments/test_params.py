"""Notebook parameter records: one validation for notebooks, the CLI and the sweep."""

from __future__ import annotations

import pytest

from tdlib.errors import ConfigError, UnknownNameError
from tdlib.experiments.params import (
    Exp1Params,
    Exp2Params,
    LocalisationParams,
    ResultsParams,
    ScaleParams,
    params_for_notebook,
)


def test_unknown_names_are_errors_not_warnings() -> None:
    with pytest.raises(ConfigError, match="PROFLE.*accepted: PROFILE"):
        Exp2Params.from_values(PROFLE="smoke")
    # lower-case names (imports, helpers) are not parameters
    assert Exp2Params.from_notebook({"PROFILE": "smoke", "pd": object(), "_x": 1}).common.profile == "smoke"


@pytest.mark.parametrize(("values", "fragment"), [
    ({"SEED": "zero"}, "SEED must be an integer"),
    ({"SEED": -1}, "SEED must be an integer >= 0"),
    ({"PROFILE": 3}, "PROFILE must be one of"),
    ({"PROFILE": "huge"}, "unknown profile 'huge'"),
    ({"RUN_DIR": ""}, "empty string would mean the current"),
    ({"DATA_DIR": 5}, "DATA_DIR must be a folder path"),
    ({"DATASETS": []}, "DATASETS is empty"),
    ({"DATASETS": ["mnist", "mnist"]}, "names mnist more than once"),
    ({"DATASETS": ["mnits"]}, "unknown dataset 'mnits'"),
    ({"N_SAMPLES": 0}, "N_SAMPLES must be an integer >= 1"),
    ({"N_SAMPLES": True}, "N_SAMPLES must be an integer >= 1"),
    ({"PROTOCOL": "fast"}, "unknown attack protocol"),
    ({"FOURIER": "yes"}, "FOURIER must be True or False"),
    ({"WHITEBOX": ["spatial"]}, "unknown white-box attack 'spatial'"),
    ({"DATASETS": ["cifar10"], "BACKBONES": ["lenetfc"]}, "no backbone of"),
])
def test_bad_values_name_the_parameter(values: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Exp2Params.from_values(**values)


def test_combinations_a_notebook_cannot_serve() -> None:
    with pytest.raises(ConfigError, match="no TD backbone for imagenette"):
        ScaleParams.from_values(DATASETS=["imagenette"])
    with pytest.raises(UnknownNameError, match="dataset with object masks"):
        LocalisationParams.from_values(DATASETS=["cifar10"])


def test_profile_fills_defaults_in_one_place() -> None:
    quick = Exp2Params.from_values(PROFILE="quick")
    paper = Exp2Params.from_values(PROFILE="paper")
    assert quick.n_images == 100 and quick.reps == 1 and quick.use_zoo
    assert paper.n_images is None and paper.reps == 3 and not paper.use_zoo
    assert len(paper.attack_list) == 11  # all ten attacks + the white-box one
    assert ScaleParams.from_values(PROFILE="quick").n_images == 40
    assert not Exp2Params.from_values(PROFILE="quick", PRETRAINED=False).use_zoo
    assert Exp1Params.from_values(PROFILE="quick").show_zoo
    assert not Exp1Params.from_values(PROFILE="smoke").show_zoo
    # the zoo's CIFAR-10 models are shown (and judged) beside the live MNIST / F-MNIST runs
    assert "cifar10_aug" in Exp1Params.from_values(PROFILE="quick").zoo_datasets
    with pytest.raises(ConfigError, match="unknown dataset .cifar100."):
        Exp1Params.from_values(PROFILE="quick", ZOO_DATASETS=["cifar100"])


def test_identity_separates_what_changes_a_result() -> None:
    a = Exp1Params.from_values(PROFILE="smoke", DATASETS=["mnist"])
    b = Exp1Params.from_values(PROFILE="smoke", DATASETS=["fashion_mnist"])
    c = Exp1Params.from_values(PROFILE="smoke", DATASETS=["mnist"], RUN_DIR="/elsewhere", DEVICE="cpu")
    assert a.identity()[2] != b.identity()[2]
    assert a.identity() == c.identity()  # where results go and which device ran do not count
    # an explicit default and the implicit one are the same experiment
    q = Exp2Params.from_values(PROFILE="quick")
    assert q.identity() == Exp2Params.from_values(PROFILE="quick", N_SAMPLES=100, REPETITIONS=1).identity()


def test_every_notebook_has_a_record() -> None:
    for stem in ("00_architecture", "01_classification", "02_adversarial_robustness",
                 "03_scale_perturbation", "04_imagenette_explainability", "05_localization",
                 "06_results"):
        assert params_for_notebook(stem) is not None
    assert params_for_notebook("07_nothing") is None
    assert ResultsParams.from_values(PROFILE="smoke").notebook_values()["PROFILE"] == "smoke"
