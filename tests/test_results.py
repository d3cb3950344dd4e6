"""The claims table is built only from saved results, with honest verdicts."""

from __future__ import annotations

from pathlib import Path

from tdlib.experiments.claims import accuracy_verdict, load_all_results, save_results
from tdlib.experiments.results import NOT_MEASURED, claims_markdown, claims_table


def test_empty_results_are_not_measured() -> None:
    rows = claims_table({}, "quick")
    assert len(rows) == 7 and all(r["verdict"].startswith(NOT_MEASURED) for r in rows)


def test_round_trip_and_verdicts(tmp_path: Path) -> None:
    save_results("exp1", "quick", {"verdicts": [
        {"dataset": "mnist", "backbone": "nin_light", "variant": "td", "bu_acc": 99.0, "td_acc": 98.5,
         "verdict": accuracy_verdict(99.0, 98.5)}]}, tmp_path)
    save_results("exp3_localisation", "quick", {"verdicts": [
        {"td_better_energy": e, "td_better_pointing": True} for e in (True, True, False, False)]}, tmp_path)
    saved = load_all_results("quick", tmp_path)
    assert set(saved) == {"exp1", "exp3_localisation"}
    rows = {r["claim"][:8]: r for r in claims_table(saved, "quick")}
    assert rows["TD class"]["verdict"] == "holds" and "98.50 vs BU 99.00" in rows["TD class"]["ours"]
    assert rows["TD gives"]["verdict"] == "mixed"  # 2 of 4: no clear majority
    assert claims_markdown(claims_table(saved, "quick")).count("\n") == 8  # header, rule, 7 claims
    # the same results at the smoke profile give no verdicts
    assert all(r["verdict"].startswith(NOT_MEASURED) for r in claims_table(saved, "smoke"))


def test_accuracy_verdict_rules() -> None:
    assert accuracy_verdict(94.6, 93.6) == "holds"
    assert accuracy_verdict(94.3, 88.0) == "does not hold"
    assert accuracy_verdict(90.0, 95.0) == "holds (TD better)"
    assert accuracy_verdict(80.0, 77.0, 2.0, 2.0) == "holds"  # within twice the combined std
    assert accuracy_verdict(10.0, 12.0).startswith("not measured")
