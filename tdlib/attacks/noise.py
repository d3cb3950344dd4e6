"""Additive noise attacks re-implemented batched in torch.

``paper``: foolbox 2's scan e = k/1000 with the quadratic scaling (Gaussian std e^2/sqrt(3),
uniform amplitude e^2), fresh noise per step, first hit wins (attack-notes 2.4, 2.5; foolbox 3's
noise attacks normalise the norm to epsilon instead). ``minimal``: foolbox 3's parametrisation
(noise rescaled to L2 norm eps, eps scanned linearly up to sqrt(C*H*W)), first hit, then a
10-step bisection towards the clean image.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tdlib.attacks.base import AttackContext
from tdlib.attacks.scan import linear_scan, refine_blend
from tdlib.attacks.seeding import sample_generators

__all__ = ["additive_gaussian", "additive_uniform"]


def _additive(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor,
              kind: str) -> tuple[Tensor, Tensor]:
    gens = sample_generators(ctx.seed, index.tolist())
    shape = tuple(x.shape[1:])
    numel = x[0].numel() if x.shape[0] else 1
    minimal = ctx.protocol == "minimal"

    def make(sel: Tensor, k0: int, k1: int) -> tuple[Tensor, None]:
        k = k1 - k0
        if kind == "gaussian":
            noise = torch.stack([torch.randn(k, *shape, generator=gens[int(i)]) for i in sel])
        else:
            noise = torch.stack([torch.rand(k, *shape, generator=gens[int(i)]) for i in sel])
            noise = 2 * noise - 1
        noise = noise.to(x.device, x.dtype)
        e = torch.arange(k0 + 1, k1 + 1, device=x.device, dtype=x.dtype) / ctx.steps
        if minimal:
            norm = noise.flatten(2).norm(dim=2).clamp_min(1e-12)
            scale = (e * math.sqrt(numel))[None, :] / norm  # ||noise|| = eps before clipping
        else:
            scale = (e**2 / math.sqrt(3) if kind == "gaussian" else e**2)[None, :].expand(
                sel.numel(), -1)
        cand = x[sel].unsqueeze(1) + scale[:, :, None, None, None] * noise
        return cand.clamp(0.0, 1.0), None

    x_adv, found = linear_scan(ctx.model, x, y, make, ctx.steps, batch=ctx.eval_batch)
    if minimal:
        x_adv = refine_blend(ctx.model, x, y, x_adv, found, batch=ctx.eval_batch)
    return x_adv, found


def additive_gaussian(ctx: AttackContext, x: Tensor, y: Tensor,
                      index: Tensor) -> tuple[Tensor, Tensor]:
    """Additive Gaussian noise (foolbox 2 AdditiveGaussianNoiseAttack in ``paper``)."""
    return _additive(ctx, x, y, index, "gaussian")


def additive_uniform(ctx: AttackContext, x: Tensor, y: Tensor,
                     index: Tensor) -> tuple[Tensor, Tensor]:
    """Additive uniform noise (foolbox 2 AdditiveUniformNoiseAttack in ``paper``)."""
    return _additive(ctx, x, y, index, "uniform")
