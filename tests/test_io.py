"""Atomic writes, run folders, locks; a full disk and damaged JSON files are one clear error."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from tdlib import io
from tdlib.errors import DiskFullError, ResultsError, RunDirError


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    p = tmp_path / "a" / "result.json"
    io.write_json(p, {"x": 1})
    io.write_json(p, {"x": 2})
    assert io.read_json(p) == {"x": 2}
    assert [f.name for f in p.parent.iterdir()] == ["result.json"]  # no temp files left


def test_failure_between_write_and_rename_leaves_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "result.json"
    io.write_json(p, {"ok": True})

    def crash(src: str, dst: str) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        io.write_json(p, {"ok": False, "half": "written"})
    monkeypatch.undo()
    assert io.read_json(p) == {"ok": True}
    assert list(tmp_path.iterdir()) == [p]  # the temp file was cleaned up


def test_crash_before_done_marker_means_not_done(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    io.write_json(folder / "result.json", {"acc": 0.5})
    assert not io.is_done(folder)
    io.mark_done(folder, {"acc": 0.5})
    assert io.is_done(folder)


def test_csv(tmp_path: Path) -> None:
    io.write_csv(tmp_path / "h.csv", [{"a": 1, "b": 2}, {"a": 3, "c": 4}])
    assert (tmp_path / "h.csv").read_text().splitlines() == ["a,b,c", "1,2,", "3,,4"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_unwritable_results_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(RunDirError, match="not writable"):
        io.ensure_writable_dir(ro / "sub")


def test_unwritable_results_folder_even_as_root(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(RunDirError, match="is not writable.*--run-dir"):
        io.ensure_writable_dir(blocker / "runs")


def test_run_lock_serialises(tmp_path: Path) -> None:
    order: list[str] = []
    inside = threading.Event()

    def worker() -> None:
        with io.run_lock(tmp_path / "run"):
            order.append("second")

    with io.run_lock(tmp_path / "run"):
        t = threading.Thread(target=worker)
        t.start()
        inside.wait(0.3)
        order.append("first")
    t.join(5)
    assert order == ["first", "second"]


# --------------------------------------------------------------------------- full disk, damaged files
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    def write(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", write)


def test_file_size_limit_is_the_disk_full_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ulimit -f``: the write fails with EFBIG (Python ignores SIGXFSZ); one clear error, the old
    file intact."""
    p = tmp_path / "model.pt"
    io.atomic_write_bytes(p, b"old")

    def write(fd: int, data: object) -> int:
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(DiskFullError, match="ulimit -f"):
        io.atomic_write_bytes(p, b"new" * 100)
    monkeypatch.undo()
    assert p.read_bytes() == b"old" and [f.name for f in tmp_path.iterdir()] == ["model.pt"]


def test_full_disk_is_a_clear_error_and_the_old_file_survives(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "result.json"
    io.write_json(p, {"ok": True})
    full_disk(monkeypatch)
    with pytest.raises(DiskFullError) as info:
        io.write_json(p, {"ok": False})
    monkeypatch.undo()
    msg = str(info.value)
    assert str(p) in msg and "No space left on device" in msg and "previous version" in msg
    assert isinstance(info.value, RunDirError) and isinstance(info.value, OSError)
    assert io.read_json(p) == {"ok": True}
    assert list(tmp_path.iterdir()) == [p]  # no temp file left behind


def test_blank_tdlib_runs_counts_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TDLIB_RUNS", "  ")
    assert io.default_runs_root() != Path("  ") and io.default_runs_root().is_absolute()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"seed": 0, "test_acc', r"is not valid JSON at line 1, column \d+ \(truncated"),
        ("", "is not valid JSON"),
        ("\xff\xfe garbage", "is not valid JSON"),
    ],
)
def test_read_json_on_a_damaged_file_names_it(tmp_path: Path, content: str, fragment: str) -> None:
    p = tmp_path / "summary.json"
    p.write_bytes(content.encode("latin-1"))
    with pytest.raises(ResultsError, match=fragment) as info:
        io.read_json(p)
    assert str(p) in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)  # callers catching ValueError still do


def test_read_json_checks_the_top_level_type_and_keeps_file_not_found(tmp_path: Path) -> None:
    p = tmp_path / "result.json"
    p.write_text("[1, 2]")
    with pytest.raises(ResultsError, match=r"holds a JSON list where a dict was expected.*delete it"):
        io.read_json(p, expect=dict)
    with pytest.raises(ResultsError, match="do this"):
        io.read_json(p, expect=dict, fix="do this")
    assert io.read_json(p, expect=(list, dict)) == [1, 2]
    with pytest.raises(FileNotFoundError):
        io.read_json(tmp_path / "absent.json")
