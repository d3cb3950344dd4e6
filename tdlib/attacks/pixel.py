"""Pixel attacks re-implemented batched in torch: foolbox 2's SinglePixel and Salt&Pepper.

foolbox 3 has no single-pixel attack, and its Salt&Pepper minimises L2 with another probability
schedule, while the paper's foolbox 2 S&P was driven by the Linf distance (attack-notes 2.1, 2.2).
"""

from __future__ import annotations

import torch
from torch import Tensor

from tdlib.attacks.base import AttackContext
from tdlib.attacks.scan import chunk_steps, classify_candidates, linear_scan
from tdlib.attacks.seeding import sample_generators

__all__ = ["MAX_PIXELS", "SP_EPSILONS", "SP_REPETITIONS", "salt_and_pepper_v2", "single_pixel"]

MAX_PIXELS = 1000  # foolbox 2 SinglePixelAttack default
SP_REPETITIONS = 10  # foolbox 2 SaltAndPepperNoiseAttack defaults
SP_EPSILONS = 100


def single_pixel(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """Set all channels of one pixel to 0, then 1, over a random order of positions.

    ``paper``: the first 1000 positions of a per-sample random permutation, first hit wins
    (foolbox 2). ``minimal``: every position, the hit of smallest L2 wins.
    """
    n, c, h, w = x.shape
    n_pix = h * w if ctx.protocol == "minimal" else min(MAX_PIXELS, h * w)
    gens = sample_generators(ctx.seed, index.tolist())
    perms = torch.stack([torch.randperm(h * w, generator=g)[:n_pix] for g in gens]) if n else \
        torch.zeros(0, n_pix, dtype=torch.long)
    perms = perms.to(x.device)

    def make(sel: Tensor, k0: int, k1: int) -> tuple[Tensor, None]:
        ks = torch.arange(k0, k1, device=x.device)
        k = ks.numel()
        pos = perms[sel][:, ks // 2]  # (m, K): each position twice, min then max
        val = (ks % 2).to(x.dtype)
        cand = x[sel].unsqueeze(1).expand(-1, k, -1, -1, -1).reshape(sel.numel(), k, c, h * w)
        cand = cand.clone()
        cand.scatter_(3, pos[:, :, None, None].expand(-1, -1, c, 1),
                      val[None, :, None, None].expand(sel.numel(), -1, c, 1))
        return cand.view(sel.numel(), k, c, h, w), None

    mode = "min" if ctx.protocol == "minimal" else "first"
    return linear_scan(ctx.model, x, y, make, 2 * n_pix, mode=mode, batch=ctx.eval_batch)


@torch.no_grad()
def salt_and_pepper_v2(ctx: AttackContext, x: Tensor, y: Tensor,
                       index: Tensor) -> tuple[Tensor, Tensor]:
    """foolbox 2.2.1 SaltAndPepperNoiseAttack with the paper's Linf distance.

    10 repetitions scan p over linspace(0, max_p, 101)[1:]; a fresh uniform draw per pixel
    (shared by the channels) sets salt where u >= 1 - p/2 and pepper where u < p/2. A candidate
    whose Linf is not below the best so far is skipped without a query; a hit ends the repetition
    and sets max_p = min(1, 1.2 p). The kept adversarial is the Linf-best (first among equals).
    """
    n, _, h, w = x.shape
    dev = x.device
    gens = sample_generators(ctx.seed, index.tolist())
    best = x.clone()
    found = torch.zeros(n, dtype=torch.bool, device=dev)
    best_linf = torch.full((n,), torch.inf, device=dev)
    max_p = torch.ones(n, device=dev, dtype=torch.float64)
    chunk = chunk_steps(h * w, SP_EPSILONS)
    for _ in range(SP_REPETITIONS):
        active = torch.ones(n, dtype=torch.bool, device=dev)
        for j0 in range(0, SP_EPSILONS, chunk):
            sel = active.nonzero().squeeze(1)
            if sel.numel() == 0:
                break
            j1 = min(j0 + chunk, SP_EPSILONS)
            steps = torch.arange(j0 + 1, j1 + 1, device=dev, dtype=torch.float64) / SP_EPSILONS
            p = max_p[sel, None] * steps[None, :]  # (m, K)
            u = torch.stack([torch.rand(j1 - j0, 1, h, w, generator=gens[int(i)],
                                        dtype=torch.float64) for i in sel]).to(dev)
            pp = p[:, :, None, None, None]
            xs = x[sel].unsqueeze(1)
            cand = torch.where(u >= 1 - pp / 2, 1.0, torch.where(u < pp / 2, 0.0, xs)).to(x.dtype)
            linf = (cand - xs).abs().flatten(2).amax(dim=2)
            valid = linf < best_linf[sel, None]
            adv = classify_candidates(ctx.model, cand, y[sel], valid, ctx.eval_batch)
            hit = adv.any(dim=1)
            pick = adv.to(torch.int8).argmax(dim=1)
            rows = sel[hit]
            best[rows] = cand[hit, pick[hit]]
            best_linf[rows] = linf[hit, pick[hit]]
            max_p[rows] = torch.clamp(1.2 * p[hit, pick[hit]], max=1.0)
            found[rows] = True
            active[rows] = False
    return best, found
