"""The claims engine: verdicts with intervals, thresholds that are named, and a guard.

A claim row states one comparison (TD against BU on one dataset and backbone, say), its effect size
with a 95% bootstrap interval and the sample it rests on, and a :class:`Verdict`:

* ``holds`` / ``does not hold`` only when the whole interval lies on one side of the claim's
  threshold (:data:`CLAIMS` names each threshold and its direction);
* ``inconclusive`` when the interval contains the threshold; the reason gives n and the interval;
* ``not claim-grade`` when a model it compares is below its accuracy floor
  (:data:`tdlib.experiments.paper.CLAIM_GRADE_FLOOR`): under-trained models decide nothing;
* ``not measured`` when no saved result covers the claim.

The experiment records (:mod:`tdlib.experiments.records`) turn their measurements into rows with
:func:`decide_row`; :func:`merge_rows` keeps the best evidence per (claim, scope) when several saved
results cover the same comparison.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from tdlib.experiments.paper import claim_grade_floor

__all__ = [
    "CLAIMS",
    "ClaimRow",
    "ClaimSpec",
    "ModelGrade",
    "Verdict",
    "claims_markdown",
    "decide",
    "decide_row",
    "guard_reason",
    "images_to_decide",
    "merge_rows",
    "missing_rows",
    "rows_to_json",
]


class Verdict(StrEnum):
    """Outcome of one claim row."""

    HOLDS = "holds"
    DOES_NOT_HOLD = "does not hold"
    INCONCLUSIVE = "inconclusive"
    NOT_CLAIM_GRADE = "not claim-grade"
    NOT_MEASURED = "not measured"

    @property
    def decided(self) -> bool:
        """True for ``holds`` and ``does not hold``."""
        return self in (Verdict.HOLDS, Verdict.DOES_NOT_HOLD)


@dataclass(frozen=True)
class ClaimSpec:
    """One claim of the paper and the rule that decides it.

    The claim holds when the whole interval of the effect is ``direction`` of ``threshold``
    ("above": low > threshold; "below": high < threshold) and does not hold when the whole interval
    is on the other side.
    """

    key: str
    statement: str
    paper: str
    metric: str
    unit: str
    threshold: float
    direction: str  # "above" or "below"

    def __post_init__(self) -> None:
        if self.direction not in ("above", "below"):
            raise ValueError(f"direction must be 'above' or 'below', got {self.direction!r}")

    @property
    def rule(self) -> str:
        """The decision rule in words."""
        side = ">" if self.direction == "above" else "<"
        return f"holds when the 95% interval of {self.metric} is entirely {side} {self.threshold:+g}{self.unit}"


#: Accuracy gap (TD − BU, points) above which "TD classifies about as well as BU" holds.
ACCURACY_MARGIN = -1.0
#: Robustness: relative change (%) of the median minimal L2 that TD must exceed (noise, blur).
ROBUSTNESS_GAIN = 0.0
#: Spatial attacks: TD is "not more robust" when its gain stays below this (%).
SPATIAL_MARGIN = 5.0

CLAIMS: dict[str, ClaimSpec] = {
    "accuracy": ClaimSpec(
        "accuracy", "TD classifies about as well as BU (Exp 1)",
        "comparable on MNIST / F-MNIST (NIN-light TD ≈ 99.5% / 93%), a small drop on CIFAR-10",
        "TD − BU test accuracy, paired over test images (and repetitions)", " pts",
        ACCURACY_MARGIN, "above"),
    "noise": ClaimSpec(
        "noise", "TD is more robust to attacks that add (correlated or uncorrelated) noise (Exp 2)",
        "TD curves under BU for Pointwise, S&P and additive noise",
        "median over images and noise attacks of the paired TD/BU ratio of minimal L2, as % change",
        "%", ROBUSTNESS_GAIN, "above"),
    "blur": ClaimSpec(
        "blur", "TD is more robust to blurring attacks (Exp 2)",
        "TD better or equal for Gaussian blur",
        "median over images of the paired TD/BU ratio of minimal L2 under Gaussian blur, as % change",
        "%", ROBUSTNESS_GAIN, "above"),
    "spatial": ClaimSpec(
        "spatial", "TD is not more robust to spatial attacks (rotations, shifts) (Exp 2)",
        "TD not better; ResNet32-TD worse on CIFAR10_aug",
        "median over images and spatial attacks of the paired TD/BU ratio of minimal L2, as % change",
        "%", SPATIAL_MARGIN, "below"),
    "variant_spatial": ClaimSpec(
        "variant_spatial", "TD_uni and TD_rev are more robust than BU to spatial attacks (supp. Fig 2)",
        "enhanced robustness against spatial attacks (CIFAR10_aug, ResNet32)",
        "median over images and spatial attacks of the paired variant/BU ratio of minimal L2, as % change",
        "%", ROBUSTNESS_GAIN, "above"),
    "variant_like_bu": ClaimSpec(
        "variant_like_bu",
        "TD_uni and TD_rev are not more robust than BU to noise or blur: they behave like BU (supp. Fig 2)",
        "similar to the BU baseline against the other attacks (CIFAR10_aug, ResNet32)",
        "median over images and the family's attacks of the paired variant/BU ratio of minimal L2, "
        "as % change (one row per family)", "%", SPATIAL_MARGIN, "below"),
    "whitebox": ClaimSpec(
        "whitebox", "TD's robustness gain holds under white-box minimal-L2 attacks (beyond the paper)",
        "not tested by the paper (decision- and score-based attacks only)",
        "median over images of the paired TD/BU ratio of minimal L2 under DDN (decoupled direction "
        "and norm, 100 steps), as % change",
        "%", ROBUSTNESS_GAIN, "above"),
    "scale": ClaimSpec(
        "scale", "Perturbing high+medium inputs hurts a TD network most; on MNIST medium+low (supp. Fig 3)",
        "high-medium most damaging pair; medium-low on MNIST",
        "accuracy of the next most damaging pair minus that of the predicted pair, paired over images",
        " pts", 0.0, "above"),
    "localisation": ClaimSpec(
        "localisation", "TD gives better-localised Grad-CAM maps than BU (Exp 3)",
        "better-localised, object-driven maps (qualitative)",
        "TD − BU share of Grad-CAM energy on the object at the final feature map, paired over images",
        "", 0.0, "above"),
    "imagenette": ClaimSpec(
        "imagenette", "On Imagenette, BU is more accurate than TD (supp. 2.1)",
        "BU about 4 points above TD",
        "BU − TD test accuracy, paired over validation images", " pts", 0.0, "above"),
    "imagenette_localisation": ClaimSpec(
        "imagenette_localisation",
        "TD Grad-CAM maps are better localised on Imagenette, scored on real object boxes (beyond the paper)",
        "better-localised maps (Figure 5, qualitative)",
        "TD − BU share of the predicted class's Grad-CAM energy inside the object boxes at the final "
        "feature map, paired over boxed images, class-balanced mean", "", 0.0, "above"),
}


@dataclass(frozen=True)
class ModelGrade:
    """A model's clean accuracy, for the guard."""

    label: str
    dataset: str
    backbone: str
    accuracy: float  # %
    n: int
    variant: str = ""


def guard_reason(models: Iterable[ModelGrade]) -> str | None:
    """Why these models may not decide a claim (``None`` when all are claim-grade)."""
    problems = []
    for m in models:
        floor = claim_grade_floor(m.dataset, m.backbone, m.variant)
        if floor is None:
            problems.append(f"{m.label}: no accuracy floor defined for {m.dataset}/{m.backbone}")
        elif not m.accuracy >= floor.accuracy:
            problems.append(f"{m.label} at {m.accuracy:.2f}% (n = {m.n}) is below the floor "
                            f"{floor.accuracy:.2f}% ({floor.source})")
    return "; ".join(problems) or None


def _fmt(v: float) -> str:
    if math.isinf(v):
        return "+inf" if v > 0 else "-inf"
    return f"{v:+.3g}"


def decide(spec: ClaimSpec, effect: float, low: float, high: float, n: int) -> tuple[Verdict, str]:
    """The verdict of ``spec`` for an effect with interval [``low``, ``high``] over ``n`` items.

    Example:
        >>> decide(CLAIMS["noise"], 12.0, 4.0, 20.0, 500)[0]
        <Verdict.HOLDS: 'holds'>
        >>> for part in decide(CLAIMS["noise"], 2.0, -0.4, 0.9, 100)[1].split("; "):
        ...     print(part)
        n = 100: interval -0.4…+0.9% contains the threshold +0%
        at the effect measured about 11 images would decide it
    """
    if n == 0 or math.isnan(effect) or math.isnan(low) or math.isnan(high):
        return Verdict.INCONCLUSIVE, f"n = {n}: no finite estimate"
    t = spec.threshold
    above, below = low > t, high < t
    interval = f"n = {n}: interval {_fmt(low)}…{_fmt(high)}{spec.unit}"
    if (spec.direction == "above" and above) or (spec.direction == "below" and below):
        return Verdict.HOLDS, f"{interval} clears {t:+g}{spec.unit}"
    if (spec.direction == "above" and below) or (spec.direction == "below" and above):
        return Verdict.DOES_NOT_HOLD, f"{interval} lies on the wrong side of {t:+g}{spec.unit}"
    return (Verdict.INCONCLUSIVE, f"{interval} contains the threshold {t:+g}{spec.unit}"
            + _power_note(effect, low, high, n, t))


def images_to_decide(effect: float, low: float, high: float, n: int, threshold: float) -> int | None:
    """Images an interval would need to exclude ``threshold`` at the effect measured.

    The interval's half-width shrinks as 1/sqrt(n); it must fall below the effect's distance to
    the threshold: ``n * (half-width / |effect - threshold|)^2``. ``None`` where the effect sits on
    the threshold or the interval is not finite.

    Example:
        >>> images_to_decide(2.0, -1.0, 5.0, 100, 0.0)
        225
    """
    gap = abs(effect - threshold)
    half = (high - low) / 2.0
    if n <= 0 or gap == 0 or not all(math.isfinite(v) for v in (effect, low, high)):
        return None
    return math.ceil(n * (half / gap) ** 2)


def _power_note(effect: float, low: float, high: float, n: int, threshold: float) -> str:
    need = images_to_decide(effect, low, high, n, threshold)
    if need is None:
        return "; the effect measured sits on the threshold: no sample size would decide it"
    return f"; at the effect measured about {need:,} images would decide it"


@dataclass(frozen=True)
class ClaimRow:
    """One verdict: a claim on one scope (e.g. ``mnist · lenetfc``), with its evidence."""

    claim: str
    scope: str
    verdict: Verdict
    effect: float | None
    ci: tuple[float, float] | None
    n: int
    runs: tuple[str, ...]
    reason: str
    detail: dict[str, Any] = field(default_factory=dict, compare=False)
    rank: tuple[int, int, str] = field(default=(0, 0, ""), compare=False)

    @property
    def spec(self) -> ClaimSpec:
        return CLAIMS[self.claim]

    def to_json(self) -> dict[str, Any]:
        """The row as the CLI's JSON (``claim``, ``verdict``, ``effect``, ``ci``, ``n``, ``runs``,
        ``reason`` plus ``scope``, ``statement``, ``metric``, ``threshold``)."""
        def finite(v: float | None) -> float | None:
            return None if v is None or math.isnan(v) else v

        return {
            "claim": self.claim, "scope": self.scope, "statement": self.spec.statement,
            "verdict": str(self.verdict), "effect": finite(self.effect),
            "ci": None if self.ci is None else [finite(self.ci[0]), finite(self.ci[1])],
            "n": self.n, "runs": list(self.runs), "reason": self.reason,
            "metric": self.spec.metric, "unit": self.spec.unit.strip(),
            "threshold": self.spec.threshold, "direction": self.spec.direction,
        }


def decide_row(claim: str, scope: str, *, effect: float, low: float, high: float, n: int,
               runs: Sequence[str], models: Sequence[ModelGrade], created: str = "",
               detail: dict[str, Any] | None = None) -> ClaimRow:
    """A claim row: the guard first, then :func:`decide` on the effect and its interval."""
    spec = CLAIMS[claim]
    blocked = guard_reason(models)
    if blocked is not None:
        verdict, reason = Verdict.NOT_CLAIM_GRADE, blocked
    else:
        verdict, reason = decide(spec, effect, low, high, n)
    return ClaimRow(claim, scope, verdict, effect, (low, high), n, tuple(runs), reason,
                    dict(detail or {}), rank=(int(blocked is None), n, created))


def merge_rows(rows: Iterable[ClaimRow]) -> list[ClaimRow]:
    """One row per (claim, scope): claim-grade evidence first, then the larger sample, then the
    newer result; rows come out in the order of :data:`CLAIMS`, then by scope."""
    best: dict[tuple[str, str], ClaimRow] = {}
    for r in rows:
        key = (r.claim, r.scope)
        if key not in best or r.rank > best[key].rank:
            best[key] = r
    order = {k: i for i, k in enumerate(CLAIMS)}
    return sorted(best.values(), key=lambda r: (order.get(r.claim, 99), r.scope))


def missing_rows(rows: Sequence[ClaimRow]) -> list[ClaimRow]:
    """``not measured`` rows for the claims no saved result covers."""
    have = {r.claim for r in rows}
    return [ClaimRow(k, "–", Verdict.NOT_MEASURED, None, None, 0, (),
                     "no saved result of this profile covers it")
            for k in CLAIMS if k not in have]


def _cell(v: float | None, unit: str) -> str:
    if v is None or math.isnan(v):
        return "–"
    return f"{_fmt(v)}{unit}"


def claims_markdown(rows: Sequence[ClaimRow]) -> str:
    """The claims table in Markdown (narrow columns, so it fits the book's page)."""
    lines = ["| claim | scope | verdict | effect [95% CI] | n |", "|---|---|---|---|---|"]
    for r in rows:
        u = r.spec.unit
        eff = _cell(r.effect, u)
        if r.ci is not None and r.effect is not None and not math.isnan(r.effect):
            eff += f" [{_cell(r.ci[0], '')}, {_cell(r.ci[1], '')}]"
        cells = [r.claim, r.scope, f"**{r.verdict}**", eff, str(r.n) if r.n else "–"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def rows_to_json(rows: Sequence[ClaimRow]) -> list[dict[str, Any]]:
    """Rows as plain JSON-able dicts."""
    return [r.to_json() for r in rows]


def with_runs(row: ClaimRow, runs: Sequence[str]) -> ClaimRow:
    """A copy of ``row`` naming other runs."""
    return replace(row, runs=tuple(runs))
