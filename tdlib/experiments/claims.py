"""The paper's claims, its numbers as recoverable, and verdicts from our saved results.

The paper's own tables were not retrievable; the values here are those of
``shared/paper/reference-notes.md``: clean accuracies read off the official notebook figures
(±0.5 points) and the supplement's qualitative statements. Each experiment notebook saves a
results JSON (:func:`save_results`); the Results page reads them all (:func:`load_all_results`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tdlib.io import default_runs_root, read_json, write_json

#: Clean test accuracy (%) of the paper's models, read off the official figures (reference 3.1).
PAPER_ACCURACY: dict[tuple[str, str, str], float] = {
    ("mnist", "nin_light", "td"): 99.5,
    ("fashion_mnist", "nin_light", "td"): 93.0,
    ("cifar10_aug", "nin", "td"): 89.75,
    ("cifar10_aug", "nin", "bu"): 90.0,
    ("cifar10_aug", "resnet32", "bu"): 92.0,
    ("cifar10", "resnet32", "bu"): 88.0,
    ("cifar10", "resnet32", "td"): 83.0,
    ("cifar10", "nin", "bu"): 89.0,
    ("cifar10", "nin", "td"): 88.5,
}

#: The claims, in the order of the Results page.
CLAIMS: dict[str, str] = {
    "accuracy": "TD classifies about as well as BU (Exp 1)",
    "noise": "TD is more robust to attacks adding correlated/uncorrelated noise (Exp 2)",
    "blur": "TD is more robust to blurring attacks (Exp 2)",
    "spatial": "TD is NOT more robust to spatial attacks (rotations, shifts) (Exp 2)",
    "scale": "Perturbing the high (+medium) scale inputs hurts TD most, except on MNIST (Exp 2, supp. Fig 3)",
    "localisation": "TD gives better-localised Grad-CAM maps than BU (Exp 3)",
    "imagenette": "On Imagenette, BU is about 4 points more accurate than TD (supp. 2.1)",
}

#: Accuracy gap (points) within which "TD ≈ BU" is said to hold.
ACCURACY_TOLERANCE = 1.0
#: Below this accuracy (%, 10 classes) a model is too close to chance for any verdict.
CHANCE_GUARD = 20.0


def results_path(name: str, profile: str, runs_root: str | Path | None = None) -> Path:
    """``<runs>/results/<name>-<profile>.json``."""
    root = Path(runs_root) if runs_root is not None else default_runs_root()
    return root / "results" / f"{name}-{profile}.json"


def save_results(name: str, profile: str, payload: dict[str, Any],
                 runs_root: str | Path | None = None) -> Path:
    """Save an experiment's results (atomically) for the Results page."""
    return write_json(results_path(name, profile, runs_root), {"profile": profile, **payload})


def load_all_results(profile: str, runs_root: str | Path | None = None) -> dict[str, Any]:
    """All saved experiment results of ``profile``, keyed by experiment name."""
    root = Path(runs_root) if runs_root is not None else default_runs_root()
    out: dict[str, Any] = {}
    for p in sorted((root / "results").glob(f"*-{profile}.json")):
        out[p.name[: -len(f"-{profile}.json")]] = read_json(p)
    return out


def accuracy_verdict(bu: float, td: float, bu_std: float = math.nan, td_std: float = math.nan,
                     tolerance: float = ACCURACY_TOLERANCE) -> str:
    """``holds`` when |TD − BU| (points) is within ``tolerance`` or within the combined std.

    When both models are near chance (below 20% on these 10-class tasks) the comparison says
    nothing about the claim: "not measured at this scale".
    """
    if math.isnan(bu) or math.isnan(td):
        return "not measured"
    if max(bu, td) < CHANCE_GUARD:
        return "not measured at this scale (models near chance)"
    spread = math.hypot(0.0 if math.isnan(bu_std) else bu_std, 0.0 if math.isnan(td_std) else td_std)
    gap = td - bu
    if abs(gap) <= max(tolerance, 2 * spread):
        return "holds"
    return "holds (TD better)" if gap > 0 else "does not hold"


def robustness_verdict(td_better: int, bu_better: int, *, expect_td_better: bool) -> str:
    """Verdict from counts of (dataset, backbone) pairs where TD or BU had the larger median L2."""
    if td_better + bu_better == 0:
        return "not measured"
    if expect_td_better:
        if td_better > bu_better:
            return "holds"
        return "does not hold" if bu_better > td_better else "mixed"
    # expectation: TD not more robust
    return "holds" if td_better <= bu_better else "does not hold"


#: Trainable params and MACs (one image) of the official architectures (reference notes 1.7).
REFERENCE_COST: dict[tuple[str, str], tuple[int, float]] = {
    ("lenetfc", "bu"): (7_670, 0.83e6), ("lenetfc", "td"): (14_452, 3.67e6),
    ("lenetfc", "td_uni"): (23_486, 11.31e6), ("lenetfc", "td_rev"): (57_846, 37.74e6),
    ("nin_light", "bu"): (62_094, 10.90e6), ("nin_light", "td"): (212_670, 101.75e6),
    ("nin_light", "td_uni"): (214_734, 103.29e6), ("nin_light", "td_rev"): (214_206, 101.57e6),
    ("nin", "bu"): (969_822, 222.5e6), ("nin", "td"): (3_368_478, 2_117e6),
    ("nin", "td_uni"): (3_397_470, 2_146e6), ("nin", "td_rev"): (3_388_446, 2_110e6),
    ("resnet32", "bu"): (467_946, 69.1e6), ("resnet32", "td"): (528_042, 86.0e6),
    ("resnet32", "td_uni"): (319_626, 148.6e6), ("resnet32", "td_rev"): (563_274, 465.3e6),
    ("resnet18_half", "bu"): (2_799_114, 567.8e6), ("resnet18_half", "td"): (4_966_538, 4_129e6),
}
