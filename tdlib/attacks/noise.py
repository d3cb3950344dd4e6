"""Additive noise attacks re-implemented batched.

:func:`additive_gaussian` / :func:`additive_uniform` (``paper``): foolbox 2's scan e over
``linspace(0, 1, 1001)[1:]`` with the quadratic scaling (Gaussian std e^2/sqrt(3), uniform
amplitude e^2), fresh noise per step, first hit wins (attack-notes 2.4, 2.5; foolbox 3's noise
attacks normalise the norm to epsilon instead). The noise comes from the sample's foolbox 2
stream, in float64, rounded to float32 and added in float32 as numpy 1.x does, so a sample gets
foolbox 2's adversarial for the same seed. The ``minimal_`` variants (``minimal``): foolbox 3's
parametrisation (noise rescaled to L2 norm eps, eps scanned linearly up to sqrt(C*H*W)), first
hit, then a 10-step bisection towards the clean image.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from tdlib.attacks.base import AttackContext
from tdlib.attacks.scan import epsilon_grid, first_hit, linear_scan, refine_blend, row_runs
from tdlib.attacks.seeding import sample_generators
from tdlib.attacks.streams import DoubleStream, sample_seed

__all__ = ["additive_gaussian", "additive_uniform", "minimal_additive_gaussian", "minimal_additive_uniform"]


def _additive_first_hit(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor,
                        kind: str) -> tuple[Tensor, Tensor]:
    numel = x[0].numel() if x.shape[0] else 1
    streams = [DoubleStream(sample_seed(ctx.seed, int(i)), "normal" if kind == "gaussian" else "uniform")
               for i in index]
    eps = epsilon_grid(ctx.steps)
    scale = torch.from_numpy(eps / np.sqrt(3) if kind == "gaussian" else eps)  # float64, per step
    eps32 = torch.from_numpy(eps).float().to(x.device)

    def make(rows: Tensor, steps: Tensor) -> tuple[Tensor, None]:
        r_np, s_np = rows.cpu().numpy(), steps.cpu().numpy()
        draws = np.empty((rows.numel(), numel))
        for a, b in row_runs(r_np):  # consecutive steps of one sample: one window
            st = streams[int(r_np[a])]
            k0, k1 = int(s_np[a]), int(s_np[b - 1]) + 1
            draws[a:b] = st.window(k0 * numel, k1 * numel).reshape(k1 - k0, numel)[s_np[a:b] - k0]
            st.release(k0 * numel)  # later rounds only ask for later steps
        d = torch.from_numpy(draws)
        sc = scale[steps.cpu()][:, None]
        noise = sc * d if kind == "gaussian" else -sc + (2 * sc) * d  # numpy's normal / uniform(-w, w)
        noise = noise.float().to(x.device).view(-1, *x.shape[1:])
        return (x[rows] + eps32[steps].view(-1, 1, 1, 1) * noise).clamp_(0.0, 1.0), None

    step, x_hit = first_hit(ctx.qmodel, x, y, ctx.steps, make)
    return x_hit, step >= 0


def _additive_minimal(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor,
                      kind: str) -> tuple[Tensor, Tensor]:
    gens = sample_generators(ctx.seed, index.tolist())
    shape = tuple(x.shape[1:])
    numel = x[0].numel() if x.shape[0] else 1

    def make(sel: Tensor, k0: int, k1: int) -> tuple[Tensor, None]:
        k = k1 - k0
        if kind == "gaussian":
            noise = torch.stack([torch.randn(k, *shape, generator=gens[int(i)]) for i in sel])
        else:
            noise = torch.stack([torch.rand(k, *shape, generator=gens[int(i)]) for i in sel])
            noise = 2 * noise - 1
        noise = noise.to(x.device, x.dtype)
        e = torch.arange(k0 + 1, k1 + 1, device=x.device, dtype=x.dtype) / ctx.steps
        norm = noise.flatten(2).norm(dim=2).clamp_min(1e-12)
        scale = (e * math.sqrt(numel))[None, :] / norm  # ||noise|| = eps before clipping
        cand = x[sel].unsqueeze(1) + scale[:, :, None, None, None] * noise
        return cand.clamp(0.0, 1.0), None

    x_adv, found = linear_scan(ctx.qmodel, x, y, make, ctx.steps)
    return refine_blend(ctx.qmodel, x, y, x_adv, found), found


def additive_gaussian(ctx: AttackContext, x: Tensor, y: Tensor,
                      index: Tensor) -> tuple[Tensor, Tensor]:
    """foolbox 2 AdditiveGaussianNoiseAttack: std e^2 / sqrt(3), first hit (``paper``)."""
    return _additive_first_hit(ctx, x, y, index, "gaussian")


def additive_uniform(ctx: AttackContext, x: Tensor, y: Tensor,
                     index: Tensor) -> tuple[Tensor, Tensor]:
    """foolbox 2 AdditiveUniformNoiseAttack: amplitude e^2, first hit (``paper``)."""
    return _additive_first_hit(ctx, x, y, index, "uniform")


def minimal_additive_gaussian(ctx: AttackContext, x: Tensor, y: Tensor,
                              index: Tensor) -> tuple[Tensor, Tensor]:
    """Gaussian noise of L2 norm eps (foolbox 3's parametrisation), first hit, then bisection
    (``minimal``)."""
    return _additive_minimal(ctx, x, y, index, "gaussian")


def minimal_additive_uniform(ctx: AttackContext, x: Tensor, y: Tensor,
                             index: Tensor) -> tuple[Tensor, Tensor]:
    """Uniform noise of L2 norm eps (foolbox 3's parametrisation), first hit, then bisection
    (``minimal``)."""
    return _additive_minimal(ctx, x, y, index, "uniform")
