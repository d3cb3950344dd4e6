"""The Results page: one row per claim, built only from saved experiment results."""

from __future__ import annotations

import math
from typing import Any

from tdlib.experiments.claims import CLAIMS

NOT_MEASURED = "not measured at this scale"


def _fmt(v: float, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _row(claim: str, paper: str, ours: str, verdict: str, profile: str) -> dict[str, str]:
    return {"claim": CLAIMS[claim], "paper": paper, "ours": ours, "profile": profile,
            "verdict": verdict}


def claims_table(saved: dict[str, Any], profile: str) -> list[dict[str, str]]:
    """Rows (claim, paper, ours, profile, verdict) from :func:`load_all_results` output."""
    rows = []
    exp1 = saved.get("exp1")
    if exp1 and exp1.get("verdicts"):
        ours = "; ".join(
            f"{v['dataset']} {v['backbone']}/{v['variant']}: {_fmt(v['td_acc'])} vs BU {_fmt(v['bu_acc'])}"
            for v in exp1["verdicts"])
        measured = [v for v in exp1["verdicts"] if not v["verdict"].startswith("not measured")]
        holds = [v["verdict"].startswith("holds") for v in measured]
        if not measured:
            verdict = NOT_MEASURED + " (models near chance)"
        else:
            verdict = "holds" if all(holds) else ("does not hold" if not any(holds) else
                                                  f"holds in {sum(holds)} of {len(holds)} pairs")
        rows.append(_row("accuracy", "comparable on MNIST/F-MNIST, small drop on CIFAR-10 "
                         "(NIN-light TD ≈99.5% MNIST, ≈93% F-MNIST)", ours, verdict, profile))
    else:
        rows.append(_row("accuracy", "comparable", "–", NOT_MEASURED, profile))

    exp2 = saved.get("exp2")
    for family, paper in (("noise", "TD curves under BU for Pointwise, S&P, additive noise"),
                          ("blur", "TD better or equal for Gaussian blur"),
                          ("spatial", "TD not better (ResNet32-TD worse on CIFAR10_aug)")):
        v = (exp2 or {}).get("verdicts", {}).get(family)
        if v and v.get("cases", v["td_more_robust"] + v["bu_more_robust"]):
            ours = (f"larger median minimal L2 for TD in {v['td_more_robust']}, for BU in "
                    f"{v['bu_more_robust']} of {v.get('cases', '?')} cases")
            rows.append(_row(family, paper, ours, v["verdict"], profile))
        else:
            rows.append(_row(family, paper, "–", NOT_MEASURED, profile))

    sc = saved.get("exp2_scales")
    if sc and sc.get("most_damaging"):
        ours = "; ".join(f"{r['dataset']}/{r['attack']}: {r['most damaging subset']}"
                         for r in sc["most_damaging"])
        hm = [r for r in sc["most_damaging"] if r["dataset"] != "mnist"]
        mn = [r for r in sc["most_damaging"] if r["dataset"] == "mnist"]
        ok_hm = all("high" in r["most damaging subset"] for r in hm)
        ok_mn = all("high" not in r["most damaging subset"] for r in mn)
        verdict = "holds" if ok_hm and ok_mn else ("mixed" if ok_hm or ok_mn else "does not hold")
        rows.append(_row("scale", "high-medium most damaging; on MNIST medium/low", ours, verdict, profile))
    else:
        rows.append(_row("scale", "high-medium most damaging", "–", NOT_MEASURED, profile))

    loc = saved.get("exp3_localisation")
    if loc and loc.get("verdicts"):
        vs = loc["verdicts"]
        e, p = sum(v["td_better_energy"] for v in vs), sum(v["td_better_pointing"] for v in vs)
        ours = f"TD more energy on object in {e}/{len(vs)} (dataset, stage) cases; pointing {p}/{len(vs)}"
        # a clear majority either way, else mixed
        verdict = "holds" if e >= 0.75 * len(vs) else ("does not hold" if e <= 0.25 * len(vs) else "mixed")
        rows.append(_row("localisation", "better-localised, object-driven maps (qualitative)", ours,
                         verdict, profile))
    else:
        rows.append(_row("localisation", "better-localised maps", "–", NOT_MEASURED, profile))

    img = saved.get("exp3_imagenette")
    if img and img.get("scores"):
        s = {r["variant"]: r for r in img["scores"]}
        if "bu" in s and "td" in s:
            gap = s["bu"]["test_accuracy"] - s["td"]["test_accuracy"]
            ours = (f"BU {_fmt(s['bu']['test_accuracy'], 1)}%, TD {_fmt(s['td']['test_accuracy'], 1)}% "
                    f"(gap {gap:+.1f}); ROAD BU {_fmt(s['bu']['road_mean'], 3)}, TD {_fmt(s['td']['road_mean'], 3)}")
            verdict = "holds" if 1.0 <= gap <= 8.0 else "does not hold"
            if profile != "paper":
                verdict += " (reduced resolution and epochs)"
            rows.append(_row("imagenette", "BU ≈4 points above TD", ours, verdict, profile))
    if not any(r["claim"] == CLAIMS["imagenette"] for r in rows):
        rows.append(_row("imagenette", "BU ≈4 points above TD", "–", NOT_MEASURED, profile))
    if profile == "smoke":  # one epoch on 200 images: the models are near chance
        for r in rows:
            r["verdict"] = NOT_MEASURED + " (smoke profile)"
    return rows


def claims_markdown(rows: list[dict[str, str]]) -> str:
    """The claims table as a Markdown table (wraps in the book's column, unlike a wide HTML table)."""
    cols = ["claim", "verdict", "ours", "paper"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [str(r[c]).replace("|", "\\|").replace("\n", " ") for c in cols]
        cells[1] = f"**{cells[1]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
