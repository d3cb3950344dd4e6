"""The claims engine on hand-made results whose verdicts are known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tdlib.bitstring import bits, unbits
from tdlib.errors import ResultsError
from tdlib.experiments import stats
from tdlib.experiments.claims import (
    CLAIMS,
    ModelGrade,
    Verdict,
    claims_markdown,
    decide,
    guard_reason,
    merge_rows,
    missing_rows,
)
from tdlib.experiments.records import (
    AccuracyEval,
    AttackEval,
    Exp1Result,
    Exp2Result,
    LocalisationEval,
    LocalisationResult,
    ModelRef,
    ResultMeta,
    ScaleEval,
    ScaleResult,
    record_from_json,
    record_to_json,
)
from tdlib.experiments.store import load_result, load_results, save_result
from tdlib.experiments.verdicts import profile_claims

RNG = np.random.default_rng(0)


def meta(exp: str, h: str = "h1", created: str = "2026-01-01T00:00:00+00:00") -> ResultMeta:
    return ResultMeta(exp, "quick", {"X": 1}, h, created, "src")


def ref(variant: str, acc: float, *, dataset: str = "mnist", backbone: str = "nin_light",
        seed: int = 0, n: int = 10_000) -> ModelRef:
    return ModelRef(dataset, backbone, variant, seed, "zoo", f"{dataset}-{backbone}-{variant}-s{seed}",
                    acc, n)


def correct(n: int, acc: float, seed: int) -> np.ndarray:
    r = np.random.default_rng(seed)
    return r.random(n) < acc


# --------------------------------------------------------------------------------- rules
def test_decide_uses_the_whole_interval() -> None:
    spec = CLAIMS["noise"]  # holds when the interval is above 0
    assert decide(spec, 5.0, 1.0, 9.0, 100)[0] is Verdict.HOLDS
    assert decide(spec, -5.0, -9.0, -1.0, 100)[0] is Verdict.DOES_NOT_HOLD
    verdict, reason = decide(spec, 2.0, -0.4, 0.9, 100)
    assert verdict is Verdict.INCONCLUSIVE
    assert "n = 100" in reason and "-0.4" in reason and "+0.9" in reason
    spatial = CLAIMS["spatial"]  # "not more robust": holds below +5 %
    assert decide(spatial, 0.0, -3.0, 4.0, 50)[0] is Verdict.HOLDS
    assert decide(spatial, 20.0, 10.0, 30.0, 50)[0] is Verdict.DOES_NOT_HOLD
    assert decide(spatial, 4.0, -3.0, 8.0, 50)[0] is Verdict.INCONCLUSIVE
    assert decide(spec, math.nan, math.nan, math.nan, 0)[0] is Verdict.INCONCLUSIVE
    # infinite ends (an attack that never breaks TD) still decide
    assert decide(spec, math.inf, 3.0, math.inf, 40)[0] is Verdict.HOLDS


def test_guard_names_the_model_and_the_floor() -> None:
    assert guard_reason([ModelGrade("a", "mnist", "nin_light", 99.4, 10_000)]) is None
    reason = guard_reason([ModelGrade("quick TD", "mnist", "nin_light", 93.6, 1000)])
    assert reason is not None and "quick TD" in reason and "98.00%" in reason and "n = 1000" in reason
    assert "no accuracy floor" in str(guard_reason([ModelGrade("x", "mnist", "resnet32", 99.0, 10)]))


# --------------------------------------------------------------------------------- stats
def test_paired_accuracy_gap_covers_the_truth_and_shrinks_with_n() -> None:
    a, b = correct(4000, 0.95, 1), correct(4000, 0.90, 2)
    est = stats.paired_accuracy_gap(a, b, resamples=500)
    assert est.low < 5.0 < est.high and est.value == pytest.approx(100 * (a.mean() - b.mean()))
    small = stats.paired_accuracy_gap(a[:200], b[:200], resamples=500)
    assert small.high - small.low > est.high - est.low
    # repetitions widen the interval when the seeds disagree
    reps = np.stack([correct(2000, p, s) for s, p in enumerate((0.80, 0.95, 0.88))])
    one = stats.paired_accuracy_gap(reps[:1], b[:2000], resamples=500)
    many = stats.paired_accuracy_gap(reps, b[:2000], resamples=500)
    assert many.high - many.low > one.high - one.low
    with pytest.raises(ValueError, match="same images"):
        stats.paired_accuracy_gap(a[:10], b[:11])


def test_pooled_median_of_log_ratios_handles_infinity() -> None:
    bu = np.array([1.0, 2.0, 3.0, np.inf, 1.0])
    td = np.array([2.0, 4.0, np.inf, np.inf, 0.5])
    lr = stats.log_ratio(td, bu)
    assert lr[0] == pytest.approx(np.log(2)) and lr[2] == np.inf and lr[3] == 0.0 and lr[4] < 0
    est = stats.pooled_median(lr, resamples=200)
    assert est.n == 5 and not math.isnan(est.low) and not math.isnan(est.high)
    assert est.low <= est.value <= est.high


# --------------------------------------------------------------------------------- records
def exp1_record(gap: float, n: int, *, bu_acc: float = 99.4, created: str = "2026-01-01") -> Exp1Result:
    bu = correct(n, 0.97, 10)
    td = bu.copy()
    flips = int(abs(gap) / 100 * n)
    idx = np.flatnonzero(bu if gap < 0 else ~bu)[:flips]
    td[idx] = not (gap < 0)
    evals = (AccuracyEval(ref("bu", bu_acc), "mnist official test set", bits(bu)),
             AccuracyEval(ref("td", 99.3), "mnist official test set", bits(td)))
    return Exp1Result(meta("exp1", created=created), evals)


def test_accuracy_claim_holds_fails_is_inconclusive_and_is_guarded() -> None:
    holds = exp1_record(0.0, 5000).claim_rows()[0]
    assert holds.verdict is Verdict.HOLDS and holds.n == 5000 and holds.ci is not None
    assert holds.runs[0] == "exp1-quick-h1" and "mnist-nin_light-bu-s0" in holds.runs
    fails = exp1_record(-5.0, 5000).claim_rows()[0]
    assert fails.verdict is Verdict.DOES_NOT_HOLD and fails.effect == pytest.approx(-5.0, abs=0.1)
    unsure = exp1_record(-1.0, 300).claim_rows()[0]
    assert unsure.verdict is Verdict.INCONCLUSIVE and "n = 300" in unsure.reason
    guarded = exp1_record(0.0, 5000, bu_acc=94.6).claim_rows()[0]
    assert guarded.verdict is Verdict.NOT_CLAIM_GRADE and "94.60%" in guarded.reason


def attack_eval(variant: str, attack: str, l2: np.ndarray, acc: float = 99.2) -> AttackEval:
    return AttackEval(ref(variant, acc, backbone="lenetfc"), attack, "paper", "sample A",
                      tuple(float(v) for v in l2))


def test_robustness_family_rows_pair_images_and_pool_attacks() -> None:
    n = 400
    base = RNG.uniform(1.0, 4.0, n)
    evals = []
    for attack, factor in (("additive_gaussian", 1.3), ("salt_and_pepper", 1.2)):
        evals += [attack_eval("bu", attack, base), attack_eval("td", attack, base * factor)]
    evals += [attack_eval("bu", "spatial", base), attack_eval("td", "spatial", base * 0.97)]
    evals += [attack_eval("bu", "gaussian_blur", base), attack_eval("td", "gaussian_blur", base * 0.8)]
    rec = Exp2Result(meta("exp2"), tuple(evals))
    rows = {r.claim: r for r in rec.claim_rows()}
    assert rows["noise"].verdict is Verdict.HOLDS and 15 < rows["noise"].effect < 35
    assert rows["noise"].detail["attacks"] == ["salt_and_pepper", "additive_gaussian"]
    assert rows["blur"].verdict is Verdict.DOES_NOT_HOLD
    assert rows["spatial"].verdict is Verdict.HOLDS  # TD not more robust (-3 %)
    per_attack = rec.attack_rows()
    assert {r.scope.split(" · ")[-1] for r in per_attack} == {
        "additive_gaussian", "salt_and_pepper", "spatial", "gaussian_blur"}
    # clean-misclassified images (L2 = 0) are left out of the pairing
    l2 = base.copy()
    l2[:100] = 0.0
    rec2 = Exp2Result(meta("exp2"), (attack_eval("bu", "gaussian_blur", l2),
                                     attack_eval("td", "gaussian_blur", base * 1.5)))
    assert rec2.claim_rows()[0].n == n - 100


def test_width_variants_decide_the_figure_2_claims_not_tds() -> None:
    """TD_uni / TD_rev rows: more robust than BU to spatial attacks, like BU to noise and blur."""
    n = 400
    base = RNG.uniform(1.0, 4.0, n)
    evals = []
    for attack, td, uni in (("spatial", 0.9, 1.4), ("salt_and_pepper", 1.5, 1.02),
                            ("gaussian_blur", 1.3, 1.6), ("l2_pgd", 1.5, 1.5)):
        evals += [attack_eval("bu", attack, base), attack_eval("td", attack, base * td),
                  attack_eval("td_uni", attack, base * uni)]
    rows = {(r.claim, r.scope): r for r in Exp2Result(meta("exp2"), tuple(evals)).claim_rows()}
    scope = "mnist · lenetfc · td_uni"
    assert rows[("variant_spatial", scope)].verdict is Verdict.HOLDS
    assert rows[("variant_like_bu", f"{scope} · noise")].verdict is Verdict.HOLDS
    assert rows[("variant_like_bu", f"{scope} · blur")].verdict is Verdict.DOES_NOT_HOLD
    assert ("spatial", scope) not in rows and ("whitebox", scope) not in rows
    assert rows[("spatial", "mnist · lenetfc")].verdict is Verdict.HOLDS  # TD itself: the TD claims
    assert rows[("noise", "mnist · lenetfc")].verdict is Verdict.HOLDS


def test_small_samples_are_inconclusive_not_decided() -> None:
    base = RNG.uniform(1.0, 4.0, 12)
    noisy = base * RNG.uniform(0.6, 1.6, 12)
    rec = Exp2Result(meta("exp2"), (attack_eval("bu", "additive_gaussian", base),
                                    attack_eval("td", "additive_gaussian", noisy)))
    row = rec.claim_rows()[0]
    assert row.verdict is Verdict.INCONCLUSIVE and row.n == 12


def test_scale_claim_uses_the_pair_the_paper_names() -> None:
    n = 300
    def subsets(hm: float, hl: float, ml: float) -> dict[str, str]:
        return {"high-medium": bits(correct(n, hm, 1)), "high-low": bits(correct(n, hl, 2)),
                "medium-low": bits(correct(n, ml, 3)), "clean": bits(np.ones(n, bool))}
    fm = ScaleEval(ref("td", 92.5, dataset="fashion_mnist"), "additive_gaussian", "s", subsets(0.3, 0.7, 0.8))
    mn = ScaleEval(ref("td", 99.4), "additive_gaussian", "s", subsets(0.9, 0.9, 0.4))
    rows = {r.scope: r for r in ScaleResult(meta("exp2_scales"), (fm, mn)).claim_rows()}
    assert rows["fashion_mnist · nin_light"].verdict is Verdict.HOLDS
    assert rows["mnist · nin_light"].verdict is Verdict.HOLDS
    assert rows["mnist · nin_light"].detail["predicted"] == "medium-low"
    wrong = ScaleEval(ref("td", 99.4), "additive_gaussian", "s", subsets(0.2, 0.9, 0.9))
    row = ScaleResult(meta("exp2_scales"), (wrong,)).claim_rows()[0]
    assert row.verdict is Verdict.DOES_NOT_HOLD


def test_localisation_decides_at_the_final_map_with_the_reference_protocol() -> None:
    n = 200
    bu_e = RNG.uniform(0.3, 0.5, n)
    def ev(variant: str, energy: np.ndarray, *, stage: str = "act_3", final: bool = True,
           protocol: tuple[str, str] = ("paper", "softmax")) -> LocalisationEval:
        return LocalisationEval(ref(variant, 99.4), stage, final, *protocol, "s",
                                tuple(energy.tolist()), bits(energy > 0.4))
    evals = (ev("bu", bu_e), ev("td", bu_e + 0.1),
             # earlier stages and the sensitivity protocol must not vote
             ev("bu", bu_e + 0.5, stage="act_1", final=False), ev("td", bu_e, stage="act_1", final=False),
             ev("bu", bu_e + 0.5, protocol=("library", "logit")), ev("td", bu_e, protocol=("library", "logit")))
    rows = LocalisationResult(meta("exp3_localisation"), evals).claim_rows()
    assert len(rows) == 1 and rows[0].verdict is Verdict.HOLDS
    assert rows[0].effect == pytest.approx(0.1)


# --------------------------------------------------------------------------------- merging
def test_merge_prefers_claim_grade_then_larger_samples_then_newer() -> None:
    guarded = exp1_record(0.0, 9000, bu_acc=90.0).claim_rows()[0]
    decided = exp1_record(0.0, 1000).claim_rows()[0]
    big = exp1_record(0.0, 5000).claim_rows()[0]
    assert merge_rows([guarded, decided])[0] is decided
    assert merge_rows([decided, big])[0] is big
    new = exp1_record(0.0, 5000, created="2027-01-01").claim_rows()[0]
    assert merge_rows([big, new])[0] is new
    missing = missing_rows(merge_rows([big]))
    assert {r.claim for r in missing} == set(CLAIMS) - {"accuracy"}
    assert all(r.verdict is Verdict.NOT_MEASURED for r in missing)
    table = claims_markdown([big, *missing])
    assert table.count("\n") == len(CLAIMS) + 1 and "**holds**" in table


def test_records_round_trip_and_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TDLIB_ARCHIVE", str(tmp_path / "no-archive"))  # the saved results alone
    rec = exp1_record(-1.0, 300)
    back = record_from_json(json.loads(json.dumps(record_to_json(rec))))
    assert json.dumps(record_to_json(back)) == json.dumps(record_to_json(rec))
    assert unbits(back.evals[0].correct).shape == (300,)
    a = Exp1Result(ResultMeta("exp1", "quick", {}, "aaa", "2026-01-01"), rec.evals)
    b = Exp1Result(ResultMeta("exp1", "quick", {}, "bbb", "2026-01-02"), rec.evals)
    save_result(a, tmp_path)
    save_result(b, tmp_path)
    assert [r.meta.params_hash for r in load_results("quick", tmp_path)] == ["aaa", "bbb"]
    assert load_results("smoke", tmp_path) == []
    rows, records = profile_claims("quick", tmp_path)
    assert len(records) == 2 and rows[0].claim == "accuracy"
    assert {r.verdict for r in rows[1:]} == {Verdict.NOT_MEASURED}


@pytest.mark.parametrize("content", ["{not json", '{"schema": 1, "experiment": "exp1"}',
                                     '{"schema": 2, "experiment": "exp9", "meta": {}}', "[]"])
def test_a_damaged_result_file_is_named(tmp_path: Path, content: str) -> None:
    path = tmp_path / "results" / "exp1" / "quick-bad.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(ResultsError, match="quick-bad.json"):
        load_result(path)
    with pytest.raises(ResultsError, match="Delete it and rerun"):
        profile_claims("quick", tmp_path)
