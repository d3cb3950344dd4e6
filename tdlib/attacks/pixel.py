"""Pixel attacks: foolbox 2's SinglePixel and Salt&Pepper, re-implemented as packed scans.

foolbox 3 has no single-pixel attack, and its Salt&Pepper minimises L2 with another probability
schedule, while the paper's foolbox 2 S&P was driven by the Linf distance (attack-notes 2.1, 2.2).
Both draw from the sample's foolbox 2 streams (:mod:`tdlib.attacks.streams`), value for value.
:func:`minimal_single_pixel` is the ``minimal`` protocol's single-pixel attack (the ``minimal``
S&P is foolbox 3's, :func:`tdlib.attacks.fbox.salt_and_pepper`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from tdlib.attacks.base import AttackContext
from tdlib.attacks.queries import QueryModel
from tdlib.attacks.scan import PairFn, first_hit, linear_scan, row_runs
from tdlib.attacks.streams import DoubleStream, sample_seed

__all__ = ["MAX_PIXELS", "SP_EPSILONS", "SP_REPETITIONS", "SaltPepperState", "minimal_single_pixel",
           "pixel_location", "run_salt_and_pepper", "salt_and_pepper", "single_pixel"]

MAX_PIXELS = 1000  # foolbox 2 SinglePixelAttack default
SP_REPETITIONS = 10  # foolbox 2 SaltAndPepperNoiseAttack defaults
SP_EPSILONS = 100


def pixel_location(pixel: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
    """(row, col) foolbox 2 writes pixel number ``pixel`` to: ``(pixel % w, pixel // w)`` on
    square images (its CHW indexing), the row-major position otherwise (where foolbox 2 fails)."""
    if h == w:
        return pixel % w, pixel // w
    return pixel // w, pixel % w


def _pixel_candidates(ctx: AttackContext, x: Tensor, index: Tensor, n_pix: int) -> PairFn:
    """Candidate of step ``k`` of a sample: its pixel ``perm[k // 2]`` set to ``k % 2`` in every
    channel, ``perm`` the first ``n_pix`` positions of ``RandomState(seed).permutation(H * W)``
    (foolbox 2's order); valid unless it is the clean image."""
    n, c, h, w = x.shape
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

    return cands


def single_pixel(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """foolbox 2 SinglePixelAttack: set all channels of one pixel to 0, then 1, over the first 1000
    positions of ``RandomState(seed).permutation(H * W)``; the first hit wins."""
    n_pix = min(MAX_PIXELS, x.shape[2] * x.shape[3])
    step, x_hit = first_hit(ctx.qmodel, x, y, 2 * n_pix, _pixel_candidates(ctx, x, index, n_pix))
    return x_hit, step >= 0


def minimal_single_pixel(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """Set all channels of one pixel to 0, then 1, at every position (in the order of
    :func:`single_pixel`); the hit of smallest L2 wins."""
    _, c, h, w = x.shape
    cands = _pixel_candidates(ctx, x, index, h * w)

    def make_chunk(sel: Tensor, k0: int, k1: int) -> tuple[Tensor, None]:
        ks = torch.arange(k0, k1, device=x.device)
        out, _ = cands(sel.repeat_interleave(ks.numel()), ks.repeat(sel.numel()))
        return out.view(sel.numel(), ks.numel(), c, h, w), None

    return linear_scan(ctx.qmodel, x, y, make_chunk, 2 * h * w, mode="min")


@dataclass
class SaltPepperState:
    """foolbox 2's S&P (and Pointwise's initialisation) state of each sample of a batch."""

    streams: list[DoubleStream]
    pos: Tensor  # (n,) next stream position (in values)
    max_p: np.ndarray  # (n,) float64
    best: Tensor  # (n, C, H, W) stored adversarial (the clean input where none)
    best_linf: Tensor  # (n,) float32, inf where none


@torch.no_grad()
def salt_and_pepper(ctx: AttackContext, x: Tensor, y: Tensor,
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
    """Run foolbox 2's S&P on every sample from fresh streams seeded with ``seeds``.

    A repetition holds all its draws (E * H * W per sample) until its hits are known, so large
    images run in groups of samples (each sample's result is independent of the others).
    """
    n, _, h, w = x.shape
    n_eps = min(SP_EPSILONS, h * w)
    group = max(1, _DRAWS_HELD // (n_eps * h * w))
    parts = []
    for a in range(0, max(n, 1), group):
        b = min(n, a + group)
        st = SaltPepperState(streams=[DoubleStream(s) for s in seeds[a:b]],
                             pos=torch.zeros(b - a, dtype=torch.long), max_p=np.ones(b - a),
                             best=x[a:b].clone(), best_linf=torch.full((b - a,), torch.inf, device=x.device))
        for _ in range(SP_REPETITIONS):
            _repetition(qm, x[a:b], y[a:b], st, n_eps)
        parts.append(st)
    if len(parts) == 1:
        return parts[0]
    return SaltPepperState(streams=[s for p in parts for s in p.streams], pos=torch.cat([p.pos for p in parts]),
                           max_p=np.concatenate([p.max_p for p in parts]), best=torch.cat([p.best for p in parts]),
                           best_linf=torch.cat([p.best_linf for p in parts]))


_DRAWS_HELD = 1 << 24  # float64 draws of one repetition held at a time (128 MiB)


_SCREEN = 32  # columns of each mask checked first (most steps are settled by them)


def _valid_steps(x: np.ndarray, st: SaltPepperState, p: np.ndarray, n_eps: int,
                 blocks: list[np.ndarray]) -> list[np.ndarray]:
    """Per sample, the steps of this repetition foolbox 2 queries: those whose candidate's Linf is
    below the best so far. Linf >= best iff salt hits a pixel whose ``1 - x`` reaches ``best`` (in
    some channel) or pepper one whose ``x`` does, i.e. iff the largest draw over the first pixels is
    >= 1 - p/2 or the smallest over the second < p/2. ``blocks[i]`` holds sample i's draws of this
    repetition (n_eps, H * W). The first few pixels of each kind settle most steps; only the steps
    they leave open are checked over all pixels."""
    best = st.best_linf.detach().cpu().numpy()
    salt_at = (1 - x).max(axis=1) >= best[:, None]  # (n, hw): salt there gives Linf >= best
    pepper_at = x.max(axis=1) >= best[:, None]
    all_steps = np.arange(n_eps)
    out = []
    for i in range(x.shape[0]):
        if not np.isfinite(best[i]):  # nothing stored yet: every candidate is queried
            out.append(all_steps)
            continue
        u = blocks[i]
        hi, lo = np.flatnonzero(salt_at[i]), np.flatnonzero(pepper_at[i])
        salt, pepper = 1 - p[i] / 2, p[i] / 2
        bad = np.zeros(n_eps, dtype=bool)
        if hi.size:
            bad |= u[:, hi[:_SCREEN]].max(axis=1) >= salt
        if lo.size:
            bad |= u[:, lo[:_SCREEN]].min(axis=1) < pepper
        open_ = np.flatnonzero(~bad)
        if open_.size and (hi.size > _SCREEN or lo.size > _SCREEN):
            rest = u[open_]
            worse = np.zeros(open_.size, dtype=bool)
            if hi.size > _SCREEN:
                worse |= rest[:, hi[_SCREEN:]].max(axis=1) >= salt[open_]
            if lo.size > _SCREEN:
                worse |= rest[:, lo[_SCREEN:]].min(axis=1) < pepper[open_]
            open_ = open_[~worse]
        out.append(open_)
    return out


def _repetition(qm: QueryModel, x: Tensor, y: Tensor, st: SaltPepperState, n_eps: int) -> None:
    n, c, h, w = x.shape
    hw = h * w
    dev = x.device
    p = np.stack([np.linspace(0, m, num=n_eps + 1)[1:] for m in st.max_p]) if n else np.zeros((0, n_eps))
    blocks = []  # this repetition's draws of every sample (those past a hit serve the next one)
    for i in range(n):
        st.streams[i].release(int(st.pos[i]))
        blocks.append(st.streams[i].window(int(st.pos[i]), int(st.pos[i]) + n_eps * hw).reshape(n_eps, hw))
    x_np = x.detach().cpu().numpy().reshape(n, c, hw).astype(np.float32)
    steps_of = _valid_steps(x_np, st, p, n_eps, blocks)
    counts = torch.tensor([s.size for s in steps_of], dtype=torch.long, device=dev)
    flat = x.flatten(2)

    def make(rows: Tensor, ks: Tensor) -> tuple[Tensor, Tensor]:
        r_np, k_np = rows.cpu().numpy(), ks.cpu().numpy()
        j = np.empty_like(k_np)
        u = np.empty((r_np.size, hw))
        for a, b in row_runs(r_np):  # one sample's steps
            r = int(r_np[a])
            j[a:b] = steps_of[r][k_np[a:b]]
            u[a:b] = blocks[r][j[a:b]]
        ut = torch.from_numpy(u).to(dev)[:, None]  # (M, 1, hw): the channels share the draw
        pj = torch.from_numpy(p[r_np, j]).to(dev).view(-1, 1, 1)
        base = flat[rows]
        cand = torch.where(ut >= 1 - pj / 2, 1.0, torch.where(ut < pj / 2, 0.0, base))
        # Linf 0 (nothing changed): the clean image, not adversarial
        return cand.view(-1, c, h, w), (cand != base).flatten(1).any(dim=1)

    k, x_hit = first_hit(qm, x, y, counts, make)
    hit_np = (k >= 0).cpu().numpy()
    j_np = np.array([int(steps_of[i][int(k[i])]) if hit_np[i] else 0 for i in range(n)], dtype=np.int64)
    hit = torch.from_numpy(hit_np).to(dev)
    st.best = torch.where(hit.view(-1, 1, 1, 1), x_hit, st.best)
    linf = (x_hit - x).abs().flatten(1).amax(dim=1)  # float32, as foolbox 2's Linf
    st.best_linf = torch.where(hit, linf, st.best_linf)
    rows = np.arange(n)
    st.max_p = np.where(hit_np, np.minimum(1.0, p[rows, j_np] * 1.2), st.max_p)
    st.pos += torch.from_numpy(np.where(hit_np, j_np + 1, n_eps) * hw)
