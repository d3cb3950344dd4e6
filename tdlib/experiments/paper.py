"""What the paper reports, as far as it is recoverable, and what "claim-grade" means here.

The paper's own tables were not retrievable; every number below comes from
``shared/paper/reference-notes.md`` (values read off the official notebook figures, ±0.5 points)
or the supplement. Two kinds of accuracy readings are kept apart:

* :data:`PAPER_CLEAN_ACCURACY`: genuine clean test accuracies (the "Original" dashed line of the
  official input-perturbation figure).
* :data:`PAPER_PLATEAU_ACCURACY`: plateaus of the Exp 2 accuracy-loss curves. A plateau is reached
  when almost every image is perturbed, so it is only a **lower bound** of the clean accuracy.

:data:`CLAIM_GRADE_FLOOR` turns these into the guard of the claims engine: no verdict is drawn from
a model whose clean accuracy is below its floor.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CLAIM_GRADE_FLOOR",
    "CLAIM_GRADE_MARGIN",
    "PAPER_CLEAN_ACCURACY",
    "PAPER_PLATEAU_ACCURACY",
    "REFERENCE_COST",
    "VARIANT_FLOOR",
    "Floor",
    "claim_grade_floor",
]

#: Clean test accuracy (%) read off the official figure (reference notes 3.1).
PAPER_CLEAN_ACCURACY: dict[tuple[str, str, str], float] = {
    ("mnist", "nin_light", "td"): 99.5,
    ("fashion_mnist", "nin_light", "td"): 93.0,
    ("cifar10_aug", "nin", "td"): 89.75,
}

#: Plateau of the Exp 2 accuracy-loss curves (%): a lower bound of the clean accuracy.
PAPER_PLATEAU_ACCURACY: dict[tuple[str, str, str], float] = {
    ("cifar10", "resnet32", "bu"): 88.0,
    ("cifar10", "resnet32", "td"): 83.0,
    ("cifar10", "nin", "bu"): 89.0,
    ("cifar10", "nin", "td"): 88.5,
    ("cifar10_aug", "resnet32", "bu"): 92.0,
    ("cifar10_aug", "nin", "bu"): 90.0,
    ("cifar10_aug", "nin", "td"): 89.0,
}

#: A model is claim-grade when its clean accuracy is at most this many points below the paper's.
CLAIM_GRADE_MARGIN = 1.5


@dataclass(frozen=True)
class Floor:
    """The lowest clean accuracy (%) at which a model's behaviour may decide a claim."""

    accuracy: float
    source: str


def _from_paper(value: float, what: str) -> Floor:
    return Floor(value - CLAIM_GRADE_MARGIN, f"{what} {value:g}% - {CLAIM_GRADE_MARGIN:g} points")


#: Per (dataset, backbone): the paper's clean accuracy minus the margin where the paper gives one
#: (the TD value stands for the backbone: the paper calls BU and TD comparable), else its plateau
#: lower bound minus the margin, else an explicit floor (stated as such).
CLAIM_GRADE_FLOOR: dict[tuple[str, str], Floor] = {
    ("mnist", "nin_light"): _from_paper(99.5, "paper's NIN-light TD clean accuracy"),
    ("fashion_mnist", "nin_light"): _from_paper(93.0, "paper's NIN-light TD clean accuracy"),
    ("mnist", "lenetfc"): Floor(98.5, "explicit floor (the paper gives no LeNetFC number)"),
    ("fashion_mnist", "lenetfc"): Floor(88.5, "explicit floor (the paper gives no LeNetFC number)"),
    ("cifar10_aug", "nin"): _from_paper(89.75, "paper's NIN TD clean accuracy"),
    # 92 - 1.5 would be 90.5; the mirror's CIFAR-10 is the upstream JPEG tree, whose lossy round trip
    # the paper's PNG-exact arrays did not have, so the floor is the bar of 90.0%
    ("cifar10_aug", "resnet32"): Floor(90.0, "paper's ResNet32 plateau 92% (a lower bound) - 1.5 points "
                                             "- 0.5 for the mirror's JPEG round trip"),
    ("cifar10", "nin"): _from_paper(89.0, "paper's NIN plateau (a lower bound)"),
    ("cifar10", "resnet32"): _from_paper(88.0, "paper's ResNet32 plateau (a lower bound)"),
    ("imagenette", "resnet18_half"): Floor(80.0, "explicit floor (the paper gives no accuracy)"),
}


#: Floors of one variant where the paper reports that variant as less accurate than BU: on
#: Imagenette the supplement puts TD about 4 points below BU, so TD's floor is BU's minus that gap
#: (a TD at the paper's distance from a BU at the bar is claim-grade; the claim is about that gap).
VARIANT_FLOOR: dict[tuple[str, str, str], Floor] = {
    ("imagenette", "resnet18_half", "td"): Floor(
        76.0, "explicit floor: BU's 80% minus the supplement's 4-point BU-TD gap"),
    # CIFAR-10 ("a small drop"): the paper's un-augmented ResNet32 plateaus put TD 5 points under BU
    # (88 vs 83); its TD variants are held to BU's 90% floor minus that gap (fixed before training)
    **{("cifar10_aug", "resnet32", v): Floor(
        85.0, "explicit floor: BU's 90% minus the 5-point BU-TD gap of the paper's CIFAR-10 "
              "ResNet32 plateaus (88 vs 83)") for v in ("td", "td_uni", "td_rev")},
}


def claim_grade_floor(dataset: str, backbone: str, variant: str = "") -> Floor | None:
    """The floor of (``dataset``, ``backbone``[, ``variant``]), or ``None`` when none is defined."""
    return VARIANT_FLOOR.get((dataset, backbone, variant)) or CLAIM_GRADE_FLOOR.get((dataset, backbone))


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
