"""Atomic writes, run folders, locks."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tdlib import io
from tdlib.errors import RunDirError


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
