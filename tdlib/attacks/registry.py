"""Attack names -> implementations."""

from __future__ import annotations

from types import MappingProxyType

from torch import Tensor

from tdlib.attacks import blended, fbox, linear, noise, pixel, pointwise, spatial, whitebox
from tdlib.attacks.base import AttackContext, AttackFn

__all__ = ["ATTACKS", "LINF_ATTACKS", "PAPER_ATTACKS", "WHITEBOX_ATTACKS", "by_protocol"]

#: The ten attacks of the paper's Exp 2 (foolbox 2.2.1 run list).
PAPER_ATTACKS: tuple[str, ...] = (
    "single_pixel", "salt_and_pepper", "pointwise", "additive_gaussian", "additive_uniform",
    "blended_uniform", "gaussian_blur", "contrast_reduction", "spatial", "shifts",
)
#: Gradient attacks (not in the paper's run list); they take a norm bound ``epsilon``.
WHITEBOX_ATTACKS: tuple[str, ...] = ("fgsm", "l2_pgd", "cw")
#: Attacks whose ``epsilon`` is an Linf bound (all others: L2).
LINF_ATTACKS: tuple[str, ...] = ("fgsm",)


def by_protocol(paper: AttackFn, minimal: AttackFn) -> AttackFn:
    """An attack that runs ``paper`` or ``minimal`` according to the context's protocol."""

    def attack(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
        return (paper if ctx.protocol == "paper" else minimal)(ctx, x, y, index)

    attack.__doc__ = f"``paper``: {paper.__doc__}\n``minimal``: {minimal.__doc__}"
    return attack


ATTACKS: MappingProxyType[str, AttackFn] = MappingProxyType({
    "single_pixel": pixel.single_pixel,
    "salt_and_pepper": fbox.salt_and_pepper,
    "pointwise": by_protocol(pointwise.pointwise_v2, fbox.pointwise),
    "additive_gaussian": noise.additive_gaussian,
    "additive_uniform": noise.additive_uniform,
    "blended_uniform": by_protocol(blended.blended_uniform_v2, fbox.blended_uniform),
    "gaussian_blur": linear.gaussian_blur,
    "contrast_reduction": linear.contrast_reduction,
    "spatial": spatial.spatial,
    "shifts": spatial.shifts,
    "fgsm": whitebox.fgsm,
    "l2_pgd": whitebox.l2_pgd,
    "cw": whitebox.cw,
})
