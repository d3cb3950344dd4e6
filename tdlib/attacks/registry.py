"""Protocols -> attack names -> implementations: one registry of attack functions per protocol.

:func:`~tdlib.attacks.run_attack` picks the protocol's registry once and calls the attack found
there; no implementation looks at the protocol. Both registries hold the same names
(:data:`ATTACKS`); an attack without a protocol-specific variant has the same function in both.
"""

from __future__ import annotations

from types import MappingProxyType

from tdlib.attacks import blended, fbox, linear, noise, pixel, pointwise, spatial, whitebox
from tdlib.attacks.base import AttackFn
from tdlib.errors import check_name
from tdlib.names import ATTACKS, LINF_ATTACKS, PAPER_ATTACKS, PROTOCOLS, WHITEBOX_ATTACKS

__all__ = ["ATTACKS", "LINF_ATTACKS", "MINIMAL", "PAPER", "PAPER_ATTACKS", "PROTOCOLS", "REGISTRIES",
           "WHITEBOX_ATTACKS", "protocol_registry"]

_WHITEBOX: dict[str, AttackFn] = {"fgsm": whitebox.fgsm, "l2_pgd": whitebox.l2_pgd, "cw": whitebox.cw}

#: ``paper``: foolbox 2.2.1 semantics (first hits of fixed scans, its random streams value for value).
PAPER: MappingProxyType[str, AttackFn] = MappingProxyType({
    "single_pixel": pixel.single_pixel,
    "salt_and_pepper": pixel.salt_and_pepper,
    "pointwise": pointwise.pointwise,
    "additive_gaussian": noise.additive_gaussian,
    "additive_uniform": noise.additive_uniform,
    "blended_uniform": blended.blended_uniform,
    "gaussian_blur": linear.gaussian_blur,
    "contrast_reduction": linear.contrast_reduction,
    "spatial": spatial.spatial,
    "shifts": spatial.shifts,
    **_WHITEBOX,
})

#: ``minimal``: per-sample minimal L2 (foolbox 3 minimisation, full grid scans, bisection refinement).
MINIMAL: MappingProxyType[str, AttackFn] = MappingProxyType({
    "single_pixel": pixel.minimal_single_pixel,
    "salt_and_pepper": fbox.salt_and_pepper,
    "pointwise": fbox.pointwise,
    "additive_gaussian": noise.minimal_additive_gaussian,
    "additive_uniform": noise.minimal_additive_uniform,
    "blended_uniform": fbox.blended_uniform,
    "gaussian_blur": linear.gaussian_blur,
    "contrast_reduction": linear.contrast_reduction,
    "spatial": spatial.minimal_spatial,
    "shifts": spatial.minimal_shifts,
    **_WHITEBOX,
})

#: protocol -> its registry.
REGISTRIES: MappingProxyType[str, MappingProxyType[str, AttackFn]] = MappingProxyType(
    {"paper": PAPER, "minimal": MINIMAL})


def protocol_registry(protocol: str) -> MappingProxyType[str, AttackFn]:
    """The attack functions of ``protocol`` (raises UnknownNameError for an unknown one)."""
    return REGISTRIES[check_name("protocol", protocol, PROTOCOLS)]
