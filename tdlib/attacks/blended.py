"""foolbox 2's BlendedUniformNoiseAttack, re-implemented as two packed first-hit scans.

1. Draw up to 1000 uniform images ``U[0, 1)^D`` from the sample's stream until one is misclassified
   (if none is, keep the last one).
2. Scan ``e`` over ``linspace(0, 1, steps + 1)[1:]``: ``(1 - e) x + e * noise`` in float32, first
   hit wins.

As in foolbox 2's ``Adversarial`` (distance Linf), the blend replaces the adversarial noise image
only when its Linf is strictly smaller, which it is unless rounding makes them equal.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from tdlib.attacks.base import AttackContext
from tdlib.attacks.scan import epsilon_grid, first_hit
from tdlib.attacks.streams import DoubleStream, sample_seed

__all__ = ["MAX_DIRECTIONS", "blended_uniform"]

MAX_DIRECTIONS = 1000  # foolbox 2 default


def blended_uniform(ctx: AttackContext, x: Tensor, y: Tensor,
                    index: Tensor) -> tuple[Tensor, Tensor]:
    """foolbox 2.2.1 BlendedUniformNoiseAttack (defaults epsilons=1000, max_directions=1000)."""
    n = x.shape[0]
    numel = x[0].numel() if n else 1
    shape = tuple(x.shape[1:])
    streams = [DoubleStream(sample_seed(ctx.seed, int(i))) for i in index]

    def noise(rows: Tensor, steps: Tensor) -> Tensor:
        out = np.empty((rows.numel(), numel))
        for j, (r, s) in enumerate(zip(rows.tolist(), steps.tolist(), strict=True)):
            out[j] = streams[r].window(s * numel, (s + 1) * numel)
            streams[r].release(s * numel)  # later rounds only ask for later draws
        return torch.from_numpy(out).float().to(x.device).view(-1, *shape)

    d_step, d_hit = first_hit(ctx.qmodel, x, y, MAX_DIRECTIONS, lambda r, s: (noise(r, s), None))
    direction = d_hit.clone()
    missed = (d_step < 0).nonzero().squeeze(1)
    if missed.numel():  # foolbox 2 blends with the last draw
        direction[missed] = noise(missed, torch.full_like(missed, MAX_DIRECTIONS - 1))
    eps = epsilon_grid(ctx.steps)
    keep = torch.from_numpy(1.0 - eps).float().to(x.device)
    mix = torch.from_numpy(eps).float().to(x.device)

    def make(rows: Tensor, steps: Tensor) -> tuple[Tensor, None]:
        cand = keep[steps].view(-1, 1, 1, 1) * x[rows] + mix[steps].view(-1, 1, 1, 1) * direction[rows]
        return cand.clamp_(0.0, 1.0), None

    b_step, b_hit = first_hit(ctx.qmodel, x, y, ctx.steps, make)
    linf_dir = (direction - x).abs().flatten(1).amax(dim=1)
    linf_blend = (b_hit - x).abs().flatten(1).amax(dim=1)
    use_dir = (d_step >= 0) & ((b_step < 0) | (linf_blend >= linf_dir))
    out = torch.where(use_dir.view(-1, 1, 1, 1), direction, b_hit)
    return out, (d_step >= 0) | (b_step >= 0)
