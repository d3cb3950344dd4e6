"""The benchmark suite's reduced mode writes a well-formed JSON report and Markdown (no timing checks)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def reduced_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    from benchmarks.run import main

    out = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as mp:  # the autouse env fixture is function-scoped
        mp.setenv("TDLIB_DATA", str(data_root))
        mp.setenv("TDLIB_OFFLINE", "1")
        mp.setenv("TDLIB_CACHE", str(out / "cache"))
        assert main(["--reduced", "--out", str(out), "--device", "cpu", "--profile-missed"]) == 0
    return out


def test_json_report_is_well_formed(reduced_run: Path) -> None:
    report = json.loads((reduced_run / "report-cpu.json").read_text())
    assert report["mode"] == "reduced"
    assert report["machine"]["device"] == "cpu" and report["machine"]["threads"] >= 1
    assert report["peak"]["peak_flops"] > 0
    assert report["models"], "no model rows"
    for row in report["models"]:
        for key in ("train_ips", "infer_ips", "train_flops", "train_mfu", "macs"):
            assert math.isfinite(row[key]) and row[key] > 0, key
        assert row["mem_bytes"] >= 0 and row["mem_method"]
    assert {r["variant"] for r in report["td_bu_ratios"]} <= {"td", "td_uni", "td_rev"}
    assert all(r["mac_ratio"] > 0 and r["time_ratio"] > 0 for r in report["td_bu_ratios"])
    assert {r["setting"] for r in report["variants"]} >= {"default"}
    att = report["attacks"]["rows"]
    assert att and all(r["batched_ips"] > 0 and r["loop_ips"] > 0 and r["samples"] > 0 for r in att)
    assert report["data"] and all(r["ips"] > 0 for r in report["data"])
    assert {r["setting"] for r in report["variants"]} >= {"bf16 autocast", "legacy layers"}
    assert report["foolbox2"]["skipped"].startswith("reduced mode")
    assert len(report["goals"]) == 9 and all(g["met"] in (True, False, None) for g in report["goals"])
    r32 = next(g for g in report["goals"] if g["goal"].startswith("ResNet32"))
    assert r32["met"] is None and r32["display"] == "not run"  # reduced mode trains no ResNet32
    eff = report["efficiency"]
    assert [m["model"] for m in eff["models"]] == ["mnist-lenetfc-td"]  # reduced: the smallest model
    for r in eff["models"][0]["rows"]:
        assert r["queries"] > 0 and r["wall_s"] > 0 and 0 < r["efficiency"] == r["model_s"] / r["wall_s"]
        assert ("profile" in r) == (r["efficiency"] < eff["goal"])
    legacy = next(g for g in report["goals"] if g["goal"].startswith("LeNetFC"))
    assert legacy["met"] in (True, False) and legacy["value"] > 0  # reduced mode measures lenetfc/td both ways
    missed = [g for g in report["goals"] if g["met"] is False]
    assert len(report.get("profiles", [])) >= len(missed) > 0 or not missed
    assert all("Name" in p["table"] for p in report.get("profiles", []))


def test_markdown_is_well_formed(reduced_run: Path) -> None:
    md = (reduced_run / "RESULTS.md").read_text()
    assert md.startswith("# Benchmarks\n")
    for heading in ("## Machine", "## Measured peak", "## Goals", "## Training step and inference per model",
                    "## TD/BU cost", "## Settings", "## Attack sweep", "## Engine efficiency", "## Data pipeline"):
        assert heading in md, heading
    assert "python -m benchmarks.run --reduced" in md
    # every table row has as many cells as its header
    lines = md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            width = lines[i - 1].count("|")
            j = i + 1
            while j < len(lines) and lines[j].startswith("| "):
                assert lines[j].count("|") == width, lines[j]
                j += 1
    assert md.count("```") % 2 == 0


def test_only_remeasures_its_sections_and_keeps_the_rest(reduced_run: Path, tmp_path: Path,
                                                          data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.run import main

    before = json.loads((reduced_run / "report-cpu.json").read_text())
    (tmp_path / "report-cpu.json").write_text(json.dumps(before))
    monkeypatch.setenv("TDLIB_DATA", str(data_root))
    monkeypatch.setenv("TDLIB_OFFLINE", "1")
    assert main(["--reduced", "--out", str(tmp_path), "--device", "cpu", "--only", "data"]) == 0
    after = json.loads((tmp_path / "report-cpu.json").read_text())
    assert after["models"] == before["models"] and after["attacks"] == before["attacks"]
    assert after["sections"]["models"]["date"] == before["date"]
    assert after["sections"]["data"]["date"] == after["date"]
    assert [g["value"] for g in after["goals"]] == [g["value"] for g in before["goals"]]
    # the carried MFUs keep the peak they were computed from, and the profiles of their missed goals
    assert after["peak"] == before["peak"] and after.get("profiles") == before.get("profiles")
    md = (tmp_path / "RESULTS.md").read_text()
    assert "Sections measured in different runs" in md and "## Training step and inference per model" in md


def test_legacy_layers_are_the_same_network_with_other_kernels() -> None:
    """The side-by-side training benchmark compares the same function, not another network."""
    import torch

    from benchmarks.worker import legacy_layers
    from tdlib.models import build_model
    from tdlib.models.layers import Dropout

    for backbone in ("lenetfc", "nin_light"):
        torch.manual_seed(0)
        new = build_model(backbone, "td").eval()
        old = build_model(backbone, "td").eval()
        old.load_state_dict(new.state_dict())
        legacy_layers(old)
        assert not any(isinstance(m, Dropout) for m in old.modules())
        assert not any(m.training for m in old.modules())
        x = torch.rand(3, 1, 28, 28)
        # the same function up to float rounding (1x1 convolutions run as matrix products now)
        torch.testing.assert_close(new(x), old(x), rtol=1e-5, atol=1e-5)
