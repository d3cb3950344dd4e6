"""The command line as an unlucky user meets it: every bad value is one ``error:`` line (exit 2),
nothing is started or written before the inputs are known to be good, and every result says at
which profile and on how many images it ran."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tdlib.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse exits for usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_error(code: int, err: str, fragment: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err


TRAIN = ("train", "--dataset", "mnist", "--backbone", "lenetfc", "--profile", "smoke")


@pytest.mark.parametrize(("argv", "fragment"), [
    ((*TRAIN, "--epochs", "-3"), "--epochs: expected an integer >= 1, got -3"),
    ((*TRAIN, "--repetitions", "0"), "--repetitions: expected an integer >= 1"),
    ((*TRAIN, "--seed", "-1"), "--seed: expected an integer >= 0"),
    ((*TRAIN, "--seed", "one"), "--seed: expected an integer >= 0, got 'one'"),
    ((*TRAIN, "--run-dir", ""), "--run-dir: expected a folder path, got an empty string"),
    ((*TRAIN, "--data-root", "  "), "--data-root: expected a folder path"),
    (("robustness", "--dataset", "mnist", "--backbone", "lenetfc", "--n-samples", "0"), "--n-samples"),
    (("robustness", "--dataset", "mnist", "--backbone", "lenetfc", "--reps", "-1"), "--reps"),
    (("robustness", "--dataset", "mnist", "--backbone", "lenetfc", "--attacks", "spatial,spatial"),
     "spatial named more than once"),
    (("robustness", "--dataset", "mnist", "--backbone", "lenetfc", "--variant", "bu,bu"), "bu named more"),
    (("robustness", "--dataset", "mnist", "--backbone", "lenetfc", "--attacks", ","), "comma-separated"),
    (("robustness", "--dataset", "mnist", "--backbone", "lenetfc", "--epochs", "5"),
     "unrecognized arguments: --epochs"),  # an option the subcommand would ignore is refused
    (("explain", "--dataset", "mnist", "--n-images", "0"), "--n-images"),
    (("explain", "--dataset", "mnist", "--backbone", "nin_light"), "unrecognized arguments: --backbone"),
    (("sweep", "--parallel", "0"), "--parallel: expected an integer >= 1"),
    (("zoo", "verify", "--bogus"), "unrecognized arguments: --bogus"),
    (("zoo",), "required: ACTION"),
])
def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...],
                                   fragment: str) -> None:
    code, _, err = run(capsys, *argv)
    one_error(code, err, fragment)


@pytest.mark.parametrize(("argv", "fragment"), [
    (("robustness", "--dataset", "mnist", "--backbone", "lenetfc", "--attacks", "spatail"),
     "unknown attack 'spatail'"),
    (("robustness", "--dataset", "cifar10", "--backbone", "lenetfc"), "no backbone of ['lenetfc']"),
    (("robustness", "--dataset", "mnist", "--backbone", "lenetfc", "--protocol", "fast"),
     "unknown attack protocol"),
    (("robustness", "--dataset", "mnist", "--backbone", "lenetfc", "--device", "cuda:7"), "CUDA"),
    (("explain", "--dataset", "cifar10"), "dataset with object masks"),
    (("claims", "--profile", "huge"), "unknown profile 'huge'"),
    (("sweep", "--profile", "smoke", "--only", "07_*"), "matches no job"),
    (("sweep", "--profile", "smoke", "--shard", "3/2"), "shard must look like"),
    (("sweep", "--profile", "smoke", "--device", "cuda:7"), "CUDA"),
    (("zoo", "train", "--only", "cifar100*"), "matches no zoo entry"),
])
def test_bad_values_are_one_line_and_start_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                   argv: tuple[str, ...], fragment: str) -> None:
    runs = tmp_path / "runs"
    extra = () if argv[0] == "zoo" else ("--run-dir", str(runs))
    code, _, err = run(capsys, *argv, *extra)
    one_error(code, err, fragment)
    assert not runs.exists() or not any(runs.rglob("*"))  # nothing created


def test_sweep_with_a_data_root_that_is_a_file_fails_before_any_kernel(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    not_a_folder = tmp_path / "data.txt"
    not_a_folder.write_text("x")
    code, _, err = run(capsys, "sweep", "--profile", "smoke", "--data-root", str(not_a_folder),
                       "--run-dir", str(tmp_path / "runs"))
    one_error(code, err, "is a file")
    assert not (tmp_path / "runs").exists()


def test_claims_names_a_damaged_result_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "results" / "exp2" / "quick-0123456789.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"schema": 2, "experiment": "exp2", "meta": ')
    code, _, err = run(capsys, "claims", "--profile", "quick", "--runs-dir", str(tmp_path))
    one_error(code, err, "quick-0123456789.json")


def test_claims_json_rows_without_results(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "claims", "--profile", "smoke", "--runs-dir", str(tmp_path), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["profile"] == "smoke" and doc["results"] == []
    assert {r["verdict"] for r in doc["rows"]} == {"not measured"}
    assert set(doc["rows"][0]) >= {"claim", "verdict", "effect", "ci", "n", "runs", "reason"}


def test_train_says_what_ran(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, *TRAIN, "--device", "cpu", "--run-dir", str(tmp_path), "--json")
    assert code == 0
    res = json.loads(out)
    assert res["profile"] == "smoke" and res["train_images"] == 180 and res["test_images"] == 100
    code, out, _ = run(capsys, *TRAIN, "--device", "cpu", "--run-dir", str(tmp_path))
    assert "profile smoke: 180 training / 100 test images, 1 epochs" in out


def test_sweep_list_json_gives_state_and_dependencies(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    code, out, _ = run(capsys, "sweep", "--profile", "smoke", "--list", "--json", "--run-dir", str(tmp_path))
    assert code == 0
    jobs = {j["job"]: j for j in json.loads(out)}
    assert {j["state"] for j in jobs.values()} <= {"done", "stale", "pending"}
    assert set(jobs["06_results"]["depends_on"]) == {
        "01_classification", "02_adversarial_robustness", "03_scale_perturbation",
        "04_imagenette_explainability", "05_localization"}
    assert jobs["02_adversarial_robustness"]["depends_on"] == []
