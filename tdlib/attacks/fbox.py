"""Attacks delegated to foolbox 3.3.4: the ``minimal`` protocol's S&P, Pointwise and blended noise,
and foolbox 3 references for the tests.

The ``paper`` registry holds re-implementations of foolbox 2.2.1 only (see the registry). Blur,
contrast reduction and blended uniform noise are the same linear scans in foolbox 3 (1000 steps,
first hit). Pointwise runs foolbox 3's PointwiseAttack (L2 binary search) from explicit starting
points (foolbox 3's S&P), so that one sample whose initialisation failed does not
crash the batch (attack-notes 4, trap 7). foolbox draws from the
global torch / numpy RNGs: they are seeded per batch and restored afterwards, so these attacks
are deterministic for a given seed and batch size but, unlike the re-implemented ones, their
result for a sample depends on the batch it was in.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from tdlib.attacks.base import AttackContext
from tdlib.attacks.seeding import derive_seed, scoped_global_seed

__all__ = [
    "blended_uniform",
    "contrast_reduction",
    "foolbox_model",
    "gaussian_blur",
    "pointwise",
    "run_foolbox",
    "salt_and_pepper",
]


def import_foolbox() -> Any:
    """Import foolbox lazily, hiding its own SciPy deprecation warning (foolbox 3.3.4 imports
    ``scipy.ndimage.filters``); importing tdlib never imports foolbox."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import foolbox

    return foolbox


def foolbox_model(ctx: AttackContext) -> Any:
    """``fb.PyTorchModel`` with bounds (0, 1) on the context's device."""
    fb = import_foolbox()
    return fb.PyTorchModel(ctx.model, bounds=(0.0, 1.0), device=ctx.device)


def run_foolbox(ctx: AttackContext, attack: Any, x: Tensor, y: Tensor, index: Tensor, *,
                epsilons: float | None = None, **kwargs: Any) -> tuple[Tensor, Tensor]:
    """Call a foolbox 3 attack under a per-batch seed on the model's device; return (clipped
    adversarial, success) on ``x``'s."""
    seed = derive_seed(ctx.seed, "batch", int(index[0]) if index.numel() else 0)
    kwargs = {k: v.to(ctx.device) if isinstance(v, Tensor) else v for k, v in kwargs.items()}
    with scoped_global_seed(seed, ctx.device), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*failed to draw sufficient random.*")
        _, clipped, success = attack(foolbox_model(ctx), x.to(ctx.device), y.to(ctx.device), epsilons=epsilons,
                                     **kwargs)
    return clipped.detach().to(x.device), success.detach().to(x.device)


def gaussian_blur(ctx: AttackContext, x: Tensor, y: Tensor,
                  index: Tensor) -> tuple[Tensor, Tensor]:
    """foolbox 3 GaussianBlurAttack(steps), sigma up to max(H, W): same scan as foolbox 2.

    The registry uses the batched :func:`tdlib.attacks.linear.gaussian_blur` (same result per
    sample, no work on samples already broken); this one is kept as its reference in the tests.
    """
    fb = import_foolbox()
    return run_foolbox(ctx, fb.attacks.GaussianBlurAttack(steps=ctx.steps), x, y, index)


def contrast_reduction(ctx: AttackContext, x: Tensor, y: Tensor,
                       index: Tensor) -> tuple[Tensor, Tensor]:
    """foolbox 3 LinearSearchContrastReductionAttack(steps, target=0.5).

    Scans e = 0..(steps-1)/steps; the registry uses :func:`tdlib.attacks.linear.contrast_reduction`
    (foolbox 2's e = 1/steps..1, batched with early exit); kept as a reference for the tests.
    """
    fb = import_foolbox()
    attack = fb.attacks.LinearSearchContrastReductionAttack(steps=ctx.steps, target=0.5)
    return run_foolbox(ctx, attack, x, y, index)


def blended_uniform(ctx: AttackContext, x: Tensor, y: Tensor,
                    index: Tensor) -> tuple[Tensor, Tensor]:
    """foolbox 3 LinearSearchBlendedUniformNoiseAttack(directions=1000, steps)."""
    fb = import_foolbox()
    attack = fb.attacks.LinearSearchBlendedUniformNoiseAttack(directions=1000, steps=ctx.steps)
    return run_foolbox(ctx, attack, x, y, index)


def salt_and_pepper(ctx: AttackContext, x: Tensor, y: Tensor,
                    index: Tensor) -> tuple[Tensor, Tensor]:
    """foolbox 3 SaltAndPepperNoiseAttack(steps, across_channels=True) (L2)."""
    fb = import_foolbox()
    attack = fb.attacks.SaltAndPepperNoiseAttack(steps=ctx.steps, across_channels=True)
    return run_foolbox(ctx, attack, x, y, index)


def pointwise(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """foolbox 3 PointwiseAttack(l2_binary_search=True) started from foolbox 3's S&P result.

    Samples whose S&P initialisation failed are not attacked and stay failures.
    """
    fb = import_foolbox()
    init, ok = salt_and_pepper(ctx, x, y, index)
    found = torch.zeros_like(ok)
    out = x.clone()
    if bool(ok.any()):
        sel = ok.nonzero().squeeze(1)
        attack = fb.attacks.PointwiseAttack(l2_binary_search=True)
        adv, succ = run_foolbox(ctx, attack, x[sel], y[sel], index[sel],
                                starting_points=init[sel])
        out[sel] = adv
        found[sel] = succ
    return out, found
