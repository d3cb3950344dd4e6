"""The training run store when its files are truncated, hand-edited or from another version,
when the disk is full, when the results path is empty, and when inputs are bad (nothing created).
tdlib.io's own full-disk and damaged-JSON errors: tests/test_io.py."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from tdlib import io
from tdlib.config import DataConfig, ModelConfig, RunConfig, TrainConfig, run_config
from tdlib.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DiskFullError,
    ResultsError,
    RunDirError,
    TdlibError,
)
from tdlib.training import fit_or_load, load_checkpoint, load_trained, run_folder, save_checkpoint


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """fit_or_load applies $TDLIB_THREADS; one thread keeps float order (and accuracies) equal to
    the module's reference runs, and is restored afterwards."""
    n = torch.get_num_threads()
    monkeypatch.setenv("TDLIB_THREADS", "1")
    yield
    torch.set_num_threads(n)


def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    def write(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", write)


# --------------------------------------------------------------------------- full disk, empty paths
def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "checkpoint.pt"
    save_checkpoint(p, {"epoch": 1})
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EDQUOT, "Disk quota exceeded")))
    with pytest.raises(DiskFullError, match="Disk quota exceeded"):
        save_checkpoint(p, {"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(p)["epoch"] == 1
    assert [f.name for f in tmp_path.iterdir()] == ["checkpoint.pt"]


@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_run_dir_never_means_the_current_directory(empty: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RunDirError, match="empty path"):
        io.run_dir(empty, "train", "x")
    with pytest.raises(RunDirError, match="empty path"):
        io.ensure_writable_dir(empty)
    with pytest.raises(RunDirError, match="empty path"):
        fit_or_load(run_config("mnist", "lenetfc", "bu", profile="smoke"), runs_root=empty,
                    device="cpu", progress=False)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- finished and partial runs
CFG = run_config("mnist", "lenetfc", "bu", profile="smoke", epochs=2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> dict[str, Path]:
    """A finished run and a paused one (1 of 2 epochs), trained once for the module."""
    n = torch.get_num_threads()
    base = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp:  # module scope: before the autouse per-test env
        mp.setenv("TDLIB_DATA", str(data_root))
        mp.setenv("TDLIB_OFFLINE", "1")
        mp.setenv("TDLIB_THREADS", "1")
        try:
            fit_or_load(CFG, runs_root=base / "done", device="cpu", progress=False)
            fit_or_load(CFG, runs_root=base / "part", device="cpu", progress=False, max_epochs=1)
        finally:
            torch.set_num_threads(n)
    return {"done": base / "done", "part": base / "part"}


def _copy(runs: dict[str, Path], which: str, dest: Path) -> tuple[Path, Path]:
    shutil.copytree(runs[which], dest)
    return dest, run_folder(CFG, 0, dest)


def _fit(root: Path) -> Any:
    return fit_or_load(CFG, runs_root=root, device="cpu", progress=False)


def _edit_ckpt(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    ckpt = load_checkpoint(path)
    ckpt.pop("format")
    edit(ckpt)
    save_checkpoint(path, ckpt)


def _grow(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: torch.zeros(*(s + 1 for s in v.shape)) if v.ndim else v for k, v in sd.items()}


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_text('{"seed": 0, "test_acc'), id="truncated"),
        pytest.param(lambda p: p.write_bytes(b"\xff\xfe\x00binary"), id="not-utf8"),
        pytest.param(lambda p: p.write_text("[1, 2]"), id="a-list"),
        pytest.param(lambda p: p.write_text(json.dumps({"seed": 0, "test_accuracy": "high"})), id="edited"),
        pytest.param(lambda p: p.unlink(), id="missing"),
    ],
)
def test_damaged_result_json_is_recomputed(runs: dict[str, Path], tmp_path: Path,
                                           damage: Callable[[Path], None]) -> None:
    ref = json.loads((run_folder(CFG, 0, runs["done"]) / "result.json").read_text())
    root, folder = _copy(runs, "done", tmp_path / "r")
    damage(folder / "result.json")
    with pytest.warns(UserWarning, match="re-evaluated from model.pt"):
        res = _fit(root)
    assert res.reused and res.test_accuracy == ref["test_accuracy"]
    assert res.val_accuracy == ref["val_accuracy"] and res.params == ref["params"]
    assert res.seconds == pytest.approx(ref["seconds"])
    again = json.loads((folder / "result.json").read_text())  # rewritten, whole
    assert again["test_accuracy"] == ref["test_accuracy"] and "recomputed" in again


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda p: p.write_text('[{"epoch": 1,'), "is not valid JSON"),
        (lambda p: p.write_text('{"epoch": 1}'), "holds a JSON dict where a list was expected"),
        (lambda p: p.write_text('[{"epoch": 2, "val_accuracy": 0.1, "seconds": 1}]'), "entry 0 is not the record"),
        (lambda p: p.unlink(), "is missing from a finished run"),
    ],
)
def test_damaged_history_json_is_one_error_naming_it(runs: dict[str, Path], tmp_path: Path,
                                                     damage: Callable[[Path], None], fragment: str) -> None:
    root, folder = _copy(runs, "done", tmp_path / "r")
    damage(folder / "history.json")
    with pytest.raises(ResultsError, match=fragment) as info:
        _fit(root)
    msg = str(info.value)
    assert str(folder / "history.json") in msg and "history.csv" in msg and "to retrain" in msg


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda p: p.unlink(), "does not exist; delete the run folder"),
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "unreadable .*; delete the run folder"),
        (lambda p: _edit_ckpt(p, lambda c: c.update(model=_grow(c["model"]))),
         r"does not fit this model .*stages\.0\.0\.0\.weight is \(7, 2, 6, 6\), expected \(6, 1, 5, 5\)"),
        (lambda p: _edit_ckpt(p, lambda c: c["model"].pop("normalize.mean")),
         r"1 missing \(normalize.mean\)"),
        (lambda p: _edit_ckpt(p, lambda c: c.pop("model")), "lacks its 'model' entry"),
        (lambda p: _edit_ckpt(p, lambda c: c.update(model=[1, 2])), "'model' entry is of type list"),
    ],
)
def test_damaged_model_pt_of_a_finished_run_says_how_to_retrain(
        runs: dict[str, Path], tmp_path: Path, damage: Callable[[Path], None], fragment: str) -> None:
    root, folder = _copy(runs, "done", tmp_path / "r")
    damage(folder / "model.pt")
    with pytest.raises(CheckpointError, match=fragment) as info:
        _fit(root)
    assert str(folder / "model.pt") in str(info.value) and "(or its DONE.json) to retrain" in str(info.value)
    assert "\n" not in str(info.value)


def test_load_trained_without_a_run_says_train_it_first(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no finished run in .*train it first"):
        load_trained(CFG, 0, tmp_path)
    assert not (tmp_path / "train").exists()


def _momentum(c: dict[str, Any]) -> None:
    for st in c["optimizer"]["state"].values():
        st["momentum_buffer"] = torch.zeros(*(s + 1 for s in st["momentum_buffer"].shape))


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda c: c.pop("optimizer"), "lacks its 'optimizer' entry"),
        (lambda c: c.pop("scheduler"), "lacks its 'scheduler' entry"),
        (lambda c: c.pop("history"), "lacks its 'history' entry"),
        (lambda c: c.update(rng={}), r"lacks its torch RNG state"),
        (lambda c: c.update(epoch="one"), "'epoch' entry is of type str, expected int"),
        (lambda c: c.update(epoch=99), "says epoch 99 with 1 history entries, for a run of 2 epochs"),
        (lambda c: c.update(model=_grow(c["model"])), r"does not fit this model.*is \(7, 2, 6, 6\)"),
        (_momentum, r"optimiser state 'momentum_buffer' is \(7, 2, 6, 6\) for a parameter of shape"),
        (lambda c: c["optimizer"].update(param_groups=[]), "different number of parameter groups"),
    ],
)
def test_checkpoint_of_another_version_is_one_error_to_restart(
        runs: dict[str, Path], tmp_path: Path, edit: Callable[[dict[str, Any]], None], fragment: str) -> None:
    root, folder = _copy(runs, "part", tmp_path / "r")
    _edit_ckpt(folder / "checkpoint.pt", edit)
    with pytest.raises(CheckpointError, match=fragment) as info:
        _fit(root)
    msg = str(info.value)
    assert str(folder / "checkpoint.pt") in msg and msg.endswith("delete it to restart this run from scratch")
    assert not (folder / "DONE.json").exists()


def test_empty_checkpoint_file_message_has_a_reason(runs: dict[str, Path], tmp_path: Path) -> None:
    root, folder = _copy(runs, "part", tmp_path / "r")
    (folder / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"truncated or corrupted: EOFError\); delete it"):
        _fit(root)


def test_folder_left_with_only_a_lock_is_trained_normally(runs: dict[str, Path], tmp_path: Path) -> None:
    folder = run_folder(CFG, 0, tmp_path)
    folder.mkdir(parents=True)
    (folder / ".lock").write_bytes(b"")  # e.g. a run killed before its first checkpoint
    res = fit_or_load(CFG, runs_root=tmp_path, device="cpu", progress=False)
    ref = json.loads((run_folder(CFG, 0, runs["done"]) / "result.json").read_text())
    assert not res.reused and res.test_accuracy == ref["test_accuracy"] and io.is_done(folder)


# --------------------------------------------------------------------------- nothing created on bad input
def _bad_data(tmp_path: Path) -> RunConfig:
    return RunConfig(DataConfig("mnist", root=str(tmp_path / "no-data")), ModelConfig("lenetfc", "bu"),
                     TrainConfig(epochs=1))


@pytest.mark.parametrize(
    ("make", "kwargs", "env", "error"),
    [
        (_bad_data, {}, {}, DataError),
        (lambda p: RunConfig(DataConfig("mnist", train_per_class=2, test_per_class=1),
                             ModelConfig("resnet18_half", "td"), TrainConfig(epochs=1)),
         {}, {}, ConfigError),  # the model cannot take these images
        (lambda p: CFG, {}, {"TDLIB_THREADS": "abc"}, ConfigError),
        (lambda p: CFG, {"rep": -1}, {}, ConfigError),
        (lambda p: CFG, {"rep": "0"}, {}, ConfigError),
        (lambda p: CFG, {"max_epochs": 0}, {}, ConfigError),
    ],
)
def test_bad_input_creates_no_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         make: Callable[[Path], RunConfig], kwargs: dict[str, Any],
                                         env: dict[str, str], error: type[Exception]) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    runs_root = tmp_path / "runs"
    with pytest.raises(error) as info:
        fit_or_load(make(tmp_path), runs_root=runs_root, progress=False, **{"device": "cpu", **kwargs})
    assert isinstance(info.value, TdlibError)
    assert not runs_root.exists()  # no empty run folder, no lock


def test_full_disk_during_training_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full_disk(monkeypatch)
    with pytest.raises(DiskFullError, match=r"checkpoint.pt.*No space left on device"):
        fit_or_load(CFG, runs_root=tmp_path, device="cpu", progress=False)
    monkeypatch.undo()
    folder = run_folder(CFG, 0, tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == [".lock"]  # no half-written file


def test_finished_run_is_reused_without_writing_a_lock(runs: dict[str, Path], tmp_path: Path) -> None:
    root, folder = _copy(runs, "done", tmp_path / "r")
    (folder / ".lock").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert _fit(root).reused
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before  # e.g. a read-only store
