"""The project's vocabulary, defined once: every name a user can pass, in its canonical order.

This module imports nothing from tdlib, so every layer (config, data, models, attacks, experiments,
sweep, CLI) can use it without cycles.
"""

from __future__ import annotations

__all__ = [
    "ATTACKS",
    "BACKBONES",
    "DATASETS",
    "DATASET_BACKBONES",
    "LINF_ATTACKS",
    "MERGES",
    "PAPER_ATTACKS",
    "PROFILES",
    "PROTOCOLS",
    "PYRAMIDS",
    "VARIANTS",
    "WHITEBOX_ATTACKS",
]

DATASETS: tuple[str, ...] = ("mnist", "fashion_mnist", "cifar10", "cifar10_aug", "imagenette")
BACKBONES: tuple[str, ...] = ("lenetfc", "nin_light", "nin", "resnet32", "resnet18_half")
VARIANTS: tuple[str, ...] = ("bu", "td", "td_uni", "td_rev")
PROFILES: tuple[str, ...] = ("smoke", "quick", "paper")
#: How a TD network's input pyramid is built (``gaussian``: the reference's blur-and-subsample).
PYRAMIDS: tuple[str, ...] = ("gaussian", "noblur", "pool", "antialias")
#: How a TD network merges a pyramid level into its main stream.
MERGES: tuple[str, ...] = ("add", "concat", "add_concat")
#: Attack protocols: ``paper`` (foolbox 2.2.1 semantics), ``minimal`` (per-sample minimal L2).
PROTOCOLS: tuple[str, ...] = ("paper", "minimal")

#: The ten attacks of the paper's Exp 2 (foolbox 2.2.1 run list).
PAPER_ATTACKS: tuple[str, ...] = (
    "single_pixel", "salt_and_pepper", "pointwise", "additive_gaussian", "additive_uniform",
    "blended_uniform", "gaussian_blur", "contrast_reduction", "spatial", "shifts",
)
#: Gradient attacks (not in the paper's run list); they take a norm bound ``epsilon``.
WHITEBOX_ATTACKS: tuple[str, ...] = ("fgsm", "l2_pgd", "cw")
#: Every attack name, in both protocols.
ATTACKS: tuple[str, ...] = PAPER_ATTACKS + WHITEBOX_ATTACKS
#: Attacks whose ``epsilon`` is an Linf bound (all others: L2).
LINF_ATTACKS: tuple[str, ...] = ("fgsm",)

#: Backbones the reference trains on each dataset (reference notes 3.1 and 3.3).
DATASET_BACKBONES: dict[str, tuple[str, ...]] = {
    "mnist": ("lenetfc", "nin_light"),
    "fashion_mnist": ("lenetfc", "nin_light"),
    "cifar10": ("resnet32", "nin"),
    "cifar10_aug": ("resnet32", "nin"),
    "imagenette": ("resnet18_half",),
}
