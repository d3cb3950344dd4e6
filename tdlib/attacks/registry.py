"""Attack names -> implementations."""

from __future__ import annotations

from types import MappingProxyType

from tdlib.attacks import fbox, linear, noise, pixel, spatial, whitebox
from tdlib.attacks.base import AttackFn

__all__ = ["ATTACKS", "FOOLBOX_BACKED", "LINF_ATTACKS", "PAPER_ATTACKS", "WHITEBOX_ATTACKS"]

#: The ten attacks of the paper's Exp 2 (foolbox 2.2.1 run list).
PAPER_ATTACKS: tuple[str, ...] = (
    "single_pixel", "salt_and_pepper", "pointwise", "additive_gaussian", "additive_uniform",
    "blended_uniform", "gaussian_blur", "contrast_reduction", "spatial", "shifts",
)
#: Gradient attacks (not in the paper's run list); they take a norm bound ``epsilon``.
WHITEBOX_ATTACKS: tuple[str, ...] = ("fgsm", "l2_pgd", "cw")
#: Attacks whose ``epsilon`` is an Linf bound (all others: L2).
LINF_ATTACKS: tuple[str, ...] = ("fgsm",)

ATTACKS: MappingProxyType[str, AttackFn] = MappingProxyType({
    "single_pixel": pixel.single_pixel,
    "salt_and_pepper": fbox.salt_and_pepper,
    "pointwise": fbox.pointwise,
    "additive_gaussian": noise.additive_gaussian,
    "additive_uniform": noise.additive_uniform,
    "blended_uniform": fbox.blended_uniform,
    "gaussian_blur": linear.gaussian_blur,
    "contrast_reduction": linear.contrast_reduction,
    "spatial": spatial.spatial,
    "shifts": spatial.shifts,
    "fgsm": whitebox.fgsm,
    "l2_pgd": whitebox.l2_pgd,
    "cw": whitebox.cw,
})

#: Which attacks run (at least partly) through foolbox 3 under each protocol.
FOOLBOX_BACKED: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "paper": ("pointwise", "blended_uniform", "l2_pgd", "cw", "fgsm"),
    "minimal": ("salt_and_pepper", "pointwise", "blended_uniform", "l2_pgd", "cw", "fgsm"),
})
