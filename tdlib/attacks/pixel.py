"""Pixel attacks: foolbox 2's SinglePixel and Salt&Pepper, re-implemented as packed scans.

foolbox 3 has no single-pixel attack, and its Salt&Pepper minimises L2 with another probability
schedule, while the paper's foolbox 2 S&P was driven by the Linf distance (attack-notes 2.1, 2.2).
Both draw from the sample's foolbox 2 streams (:mod:`tdlib.attacks.streams`), value for value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from tdlib.attacks.base import AttackContext
from tdlib.attacks.queries import QueryModel
from tdlib.attacks.scan import first_hit, linear_scan
from tdlib.attacks.streams import DoubleStream, sample_seed

__all__ = ["MAX_PIXELS", "SP_EPSILONS", "SP_REPETITIONS", "SaltPepperState", "pixel_location",
           "salt_and_pepper_v2", "single_pixel"]

MAX_PIXELS = 1000  # foolbox 2 SinglePixelAttack default
SP_REPETITIONS = 10  # foolbox 2 SaltAndPepperNoiseAttack defaults
SP_EPSILONS = 100


def pixel_location(pixel: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
    """(row, col) foolbox 2 writes pixel number ``pixel`` to: ``(pixel % w, pixel // w)`` on
    square images (its CHW indexing), the row-major position otherwise (where foolbox 2 fails)."""
    if h == w:
        return pixel % w, pixel // w
    return pixel // w, pixel % w


def single_pixel(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """Set all channels of one pixel to 0, then 1, over a random order of positions.

    ``paper``: the first 1000 positions of ``RandomState(seed).permutation(H * W)``, first hit wins
    (foolbox 2). ``minimal``: every position, the hit of smallest L2 wins.
    """
    n, c, h, w = x.shape
    n_pix = h * w if ctx.protocol == "minimal" else min(MAX_PIXELS, h * w)
    perms = torch.from_numpy(np.stack(
        [np.random.RandomState(sample_seed(ctx.seed, int(i))).permutation(h * w)[:n_pix] for i in index]
    ) if n else np.zeros((0, n_pix), dtype=np.int64)).to(x.device)
    flat = x.flatten(2)  # (n, c, h*w)

    def cands(rows: Tensor, steps: Tensor) -> tuple[Tensor, Tensor]:
        row, col = pixel_location(perms[rows, steps // 2], h, w)
        loc = (row * w + col)[:, None, None].expand(-1, c, 1)
        out = flat[rows].clone()
        val = (steps % 2).to(x.dtype)[:, None, None].expand(-1, c, 1)
        changed = (out.gather(2, loc) != val).any(dim=1).squeeze(1)  # else: the clean image
        out.scatter_(2, loc, val)
        return out.view(-1, c, h, w), changed

    if ctx.protocol == "minimal":
        def make_chunk(sel: Tensor, k0: int, k1: int) -> tuple[Tensor, None]:
            ks = torch.arange(k0, k1, device=x.device)
            out, _ = cands(sel.repeat_interleave(ks.numel()), ks.repeat(sel.numel()))
            return out.view(sel.numel(), ks.numel(), c, h, w), None

        return linear_scan(ctx.qmodel, x, y, make_chunk, 2 * n_pix, mode="min", batch=ctx.eval_batch)

    step, x_hit = first_hit(ctx.qmodel, x, y, 2 * n_pix, cands)
    return x_hit, step >= 0


@dataclass
class SaltPepperState:
    """foolbox 2's S&P (and Pointwise's initialisation) state of each sample of a batch."""

    streams: list[DoubleStream]
    pos: Tensor  # (n,) next stream position (in values)
    max_p: np.ndarray  # (n,) float64
    best: Tensor  # (n, C, H, W) stored adversarial (the clean input where none)
    best_linf: Tensor  # (n,) float32, inf where none


@torch.no_grad()
def salt_and_pepper_v2(ctx: AttackContext, x: Tensor, y: Tensor,
                       index: Tensor) -> tuple[Tensor, Tensor]:
    """foolbox 2.2.1 SaltAndPepperNoiseAttack with the paper's Linf distance.

    10 repetitions scan p over ``linspace(0, max_p, E + 1)[1:]`` (E = min(100, H * W)); each p draws
    u ~ U[0, 1) per pixel (shared by the channels) and sets salt where u >= 1 - p/2, pepper where
    u < p/2. A candidate whose Linf is not below the best so far is skipped without a query (its draw
    is still consumed); a hit ends the repetition and sets max_p = min(1, 1.2 p). The kept adversarial
    is the last hit, which is the Linf-best.
    """
    state = run_salt_and_pepper(ctx.qmodel, x, y, [sample_seed(ctx.seed, int(i)) for i in index])
    return state.best, torch.isfinite(state.best_linf)


def run_salt_and_pepper(qm: QueryModel, x: Tensor, y: Tensor, seeds: list[int]) -> SaltPepperState:
    """Run foolbox 2's S&P on every sample from fresh streams seeded with ``seeds``."""
    n, _, h, w = x.shape
    n_eps = min(SP_EPSILONS, h * w)
    state = SaltPepperState(streams=[DoubleStream(s) for s in seeds],
                            pos=torch.zeros(n, dtype=torch.long), max_p=np.ones(n),
                            best=x.clone(), best_linf=torch.full((n,), torch.inf, device=x.device))
    for _ in range(SP_REPETITIONS):
        _repetition(qm, x, y, state, n_eps)
    return state


def _codes(x: Tensor, st: SaltPepperState, n_eps: int) -> tuple[Tensor, Tensor, np.ndarray]:
    """All ``n_eps`` candidates of every sample as codes (0 keep, 1 salt, 2 pepper; (n, E, H*W)
    uint8), their float32 Linf (n, E) and probabilities (n, E) float64; draws compared in float64."""
    n, _, h, w = x.shape
    hw = h * w
    p = np.stack([np.linspace(0, m, num=n_eps + 1)[1:] for m in st.max_p]) if n else np.zeros((0, n_eps))
    codes = torch.empty((n, n_eps, hw), dtype=torch.uint8)
    linf = torch.empty((n, n_eps), dtype=torch.float32)
    xs = x.detach().cpu().flatten(1)  # channels share the mask: Linf over channels first
    lo, hi = xs.view(n, -1, hw).amax(dim=1), (1 - xs.view(n, -1, hw)).amax(dim=1)  # (n, hw)
    chunk = max(1, _CODE_BUDGET // (n_eps * hw))
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        u = torch.from_numpy(np.stack([st.streams[i].window(int(st.pos[i]), int(st.pos[i]) + n_eps * hw)
                                       for i in range(a, b)])).view(b - a, n_eps, hw)
        pp = torch.from_numpy(p[a:b, :, None])
        salt = u >= 1 - pp / 2
        pepper = u < pp / 2
        codes[a:b] = salt.to(torch.uint8) + 2 * pepper.to(torch.uint8)
        zero = torch.zeros((), dtype=torch.float32)
        diff = torch.where(salt, hi[a:b, None], torch.where(pepper, lo[a:b, None], zero))
        linf[a:b] = diff.amax(dim=2)
    return codes.to(x.device), linf.to(x.device), p


_CODE_BUDGET = 1 << 24  # float64 draws held at a time


def _repetition(qm: QueryModel, x: Tensor, y: Tensor, st: SaltPepperState, n_eps: int) -> None:
    n, c, h, w = x.shape
    dev = x.device
    codes, linf, p = _codes(x, st, n_eps)
    valid = (linf < st.best_linf[:, None]) & (linf > 0)  # Linf 0: the clean image, not adversarial
    counts = valid.sum(dim=1)
    order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)  # valid steps first, in order
    flat = x.flatten(2)

    def make(rows: Tensor, steps: Tensor) -> tuple[Tensor, None]:
        code = codes[rows, order[rows, steps]][:, None]  # (M, 1, hw), broadcast over channels
        cand = torch.where(code == 1, 1.0, torch.where(code == 2, 0.0, flat[rows]))
        return cand.to(x.dtype).view(-1, c, h, w), None

    k, x_hit = first_hit(qm, x, y, counts, make)
    hit = k >= 0
    j = order[torch.arange(n, device=dev), k.clamp(min=0)]
    st.best = torch.where(hit.view(-1, 1, 1, 1), x_hit, st.best)
    st.best_linf = torch.where(hit, linf[torch.arange(n, device=dev), j], st.best_linf)
    hit_np = hit.cpu().numpy()
    j_np = j.cpu().numpy()
    rows = np.arange(n)
    st.max_p = np.where(hit_np, np.minimum(1.0, p[rows, j_np] * 1.2), st.max_p)
    st.pos += torch.from_numpy(np.where(hit_np, j_np + 1, n_eps) * h * w)
