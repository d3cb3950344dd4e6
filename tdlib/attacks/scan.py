"""Batched search engines: the packed first-hit scan, full minimum scans, and bisection.

:func:`first_hit` is the engine of the ``paper`` protocol, where every attack keeps the first
adversarial of a fixed sequence of candidates (foolbox 2 semantics). Each round gives every sample
still searching a few next steps (2 at first, then 1/8 of the steps it has scanned, so that what is
evaluated past a sample's first hit stays near 6%), packs all these (sample, step) candidates into
one forward pass, and retires the samples that hit. Candidates known not to be adversarial (marked
invalid by the attack, or, with ``skip_identity``, equal to the clean input) are never sent to the
model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from tdlib.attacks.queries import QueryModel

__all__ = ["Schedule", "chunk_steps", "classify_candidates", "epsilon_grid", "first_hit", "linear_scan",
           "pair_layout", "refine_blend", "row_runs"]

#: ``make(rows, steps) -> (candidates, valid)`` for the (sample, step) pairs ``(rows[j], steps[j])``
#: (sorted by row, then step): candidates (M, C, H, W) and a (M,) bool mask of those to query (None:
#: all). Random draws may depend only on the sample and the step, never on the packing.
PairFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor | None]]

#: ``make(sel, k0, k1) -> (candidates, valid)``: candidates (len(sel), k1-k0, C, H, W) for steps
#: k0..k1-1 of the samples ``sel`` (indices into the batch); ``valid`` (len(sel), k1-k0) bool marks
#: candidates to query (None = all). Random draws must depend only on the sample and the step.
CandidateFn = Callable[[Tensor, int, int], tuple[Tensor, Tensor | None]]

def epsilon_grid(steps: int, stop: float = 1.0) -> np.ndarray:
    """foolbox 2's scan values ``np.linspace(0, stop, steps + 1)[1:]`` (float64; not exactly k/steps)."""
    return np.linspace(0.0, stop, num=steps + 1)[1:]


_ELEMENT_BUDGET = 2**17  # candidate elements per sample and chunk (~0.5 MB in float32)


def chunk_steps(numel: int, n_steps: int) -> int:
    """Steps per chunk for images of ``numel`` elements: a fixed function of the image size only,
    so that random draws (made chunk by chunk) do not depend on the batch."""
    return max(1, min(n_steps, _ELEMENT_BUDGET // max(numel, 1)))


def classify_candidates(qm: QueryModel, cands: Tensor, y: Tensor, valid: Tensor | None) -> Tensor:
    """(n, K) bool: candidate k of sample i is misclassified (False where not ``valid``)."""
    n, k = cands.shape[:2]
    flat = cands.reshape(n * k, *cands.shape[2:])
    labels = y.repeat_interleave(k)
    adv = torch.zeros(n * k, dtype=torch.bool, device=cands.device)
    if valid is None:
        adv = qm.misclassified(flat, labels)
    else:
        idx = valid.reshape(-1).nonzero().squeeze(1)
        if idx.numel():
            adv[idx] = qm.misclassified(flat[idx], labels[idx])
    return adv.view(n, k)


@dataclass(frozen=True)
class Schedule:
    """How many steps :func:`first_hit` gives each searching sample per round.

    A sample that has scanned ``p`` steps gets ``max(first, floor(growth * p))`` more; when a round
    would hold fewer than ``fill`` candidates (few samples left), everyone scans further ahead; no
    round holds more than about ``budget`` candidates (fewer for large images: ``ROUND_ELEMENTS``).
    """

    first: int = 2
    growth: float = 0.125
    fill: int = 96
    budget: int = 4096


def row_runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of the runs of equal values in a sorted array (the pairs of one sample)."""
    if rows.size == 0:
        return []
    cut = np.flatnonzero(np.diff(rows)) + 1
    bounds = np.concatenate([[0], cut, [rows.size]])
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def pair_layout(k: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For per-row counts ``k`` (R,): (segment id of every pair, offset inside its row, row starts)."""
    seg = torch.repeat_interleave(torch.arange(k.numel(), device=k.device), k)
    starts = torch.cumsum(k, 0) - k
    offs = torch.arange(int(k.sum()), device=k.device) - starts[seg]
    return seg, offs, starts


#: candidate elements per round at most (64 MiB of float32; large images get fewer candidates)
ROUND_ELEMENTS = 1 << 24


def _allot(done: Tensor, left: Tensor, sch: Schedule, numel: int) -> Tensor:
    budget = max(1, min(sch.budget, ROUND_ELEMENTS // max(numel, 1)))
    fill = min(sch.fill, budget)
    k = torch.clamp((done.double() * sch.growth).floor().long(), min=sch.first)
    k = torch.minimum(k, left)
    total = int(k.sum())
    if 0 < total < fill:
        k = torch.minimum(left, k * math.ceil(fill / total))
    elif total > budget:
        k = torch.clamp((k.double() * (budget / total)).floor().long(), min=1)
    return k


def first_hit(qm: QueryModel, x: Tensor, y: Tensor, n_steps: Tensor | int, make: PairFn, *,
              schedule: Schedule | None = None, skip_identity: bool = False) -> tuple[Tensor, Tensor]:
    """Per sample, the first step whose candidate is valid and misclassified (foolbox 2's scans).

    Args:
        qm: the query model.
        x: (N, C, H, W) clean inputs (all classified correctly).
        y: (N,) labels.
        n_steps: steps per sample, an int or a (N,) tensor.
        make: candidate generator, see ``PairFn``.
        schedule: round sizes (default :class:`Schedule`).
        skip_identity: never query a candidate equal to its clean input (it is not adversarial).

    Returns:
        (step, x_hit): (N,) long, the first hit's step or -1; (N, C, H, W) the candidate there
        (the clean input where none).
    """
    sch = schedule or Schedule()
    n = x.shape[0]
    dev = x.device
    total = torch.as_tensor(n_steps, device=dev).long().expand(n).clone()
    done = torch.zeros(n, dtype=torch.long, device=dev)
    step = torch.full((n,), -1, dtype=torch.long, device=dev)
    x_hit = x.clone()
    active = total > 0
    while True:
        rows = active.nonzero().squeeze(1)
        if rows.numel() == 0:
            break
        k = _allot(done[rows], total[rows] - done[rows], sch, x[0].numel())
        seg, offs, starts = pair_layout(k)
        pair_rows = rows[seg]
        cands, valid = make(pair_rows, done[pair_rows] + offs)
        if skip_identity:
            same = (cands == x[pair_rows]).flatten(1).all(dim=1)
            valid = ~same if valid is None else valid & ~same
        adv = torch.zeros(seg.numel(), dtype=torch.bool, device=dev)
        ask = valid.nonzero().squeeze(1) if valid is not None else None
        if ask is None:
            adv = qm.misclassified(cands, y[pair_rows])
        elif ask.numel():
            adv[ask] = qm.misclassified(cands[ask], y[pair_rows[ask]])
        first = torch.full((rows.numel(),), torch.iinfo(torch.long).max, dtype=torch.long, device=dev)
        first.scatter_reduce_(0, seg[adv], offs[adv], reduce="amin")
        hit = first < torch.iinfo(torch.long).max
        hit_rows = rows[hit]
        step[hit_rows] = done[hit_rows] + first[hit]
        x_hit[hit_rows] = cands[starts[hit] + first[hit]].to(x.dtype)
        done[rows] += k
        active[hit_rows] = False
        active &= done < total
    return step, x_hit


def linear_scan(qm: QueryModel, x: Tensor, y: Tensor, make: CandidateFn, n_steps: int, *,
                mode: str = "first") -> tuple[Tensor, Tensor]:
    """Scan ``n_steps`` candidates per sample in order.

    Args:
        qm: the query model.
        x: (N, C, H, W) clean inputs.
        y: (N,) labels.
        make: candidate generator (see ``CandidateFn``).
        n_steps: number of candidates per sample.
        mode: ``"first"`` keeps the first misclassified candidate and stops that sample (foolbox 2
            semantics); ``"min"`` scans everything and keeps the misclassified candidate of
            smallest L2.

    Returns:
        (x_best, found): the kept candidate (x where none) and a (N,) bool mask.
    """
    best = x.clone()
    found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    best_l2 = torch.full((x.shape[0],), torch.inf, dtype=torch.float64, device=x.device)
    active = torch.ones_like(found)
    chunk = chunk_steps(x[0].numel() if x.shape[0] else 1, n_steps)
    for k0 in range(0, n_steps, chunk):
        sel = active.nonzero().squeeze(1)
        if sel.numel() == 0:
            break
        cands, valid = make(sel, k0, min(k0 + chunk, n_steps))
        adv = classify_candidates(qm, cands, y[sel], valid)
        if mode == "first":
            hit = adv.any(dim=1)
            pick = adv.to(torch.int8).argmax(dim=1)
            active[sel[hit]] = False
        else:
            dist = (cands - x[sel].unsqueeze(1)).flatten(2).double().norm(dim=2)
            dist = torch.where(adv, dist, torch.inf)
            mind, pick = dist.min(dim=1)
            hit = mind < best_l2[sel]
            best_l2[sel[hit]] = mind[hit]
        rows = sel[hit]
        best[rows] = cands[hit, pick[hit]]
        found[rows] = True
    return best, found


@torch.no_grad()
def refine_blend(qm: QueryModel, x: Tensor, y: Tensor, x_adv: Tensor, found: Tensor, *,
                 iters: int = 10) -> Tensor:
    """Bisect t in [0, 1] on x + t (x_adv - x), keeping the adversarial end (shrinks the L2).

    Only rows with ``found`` are refined; the result is always misclassified where ``found``.
    """
    if not bool(found.any()):
        return x_adv
    idx = found.nonzero().squeeze(1)
    x0, xa, yy = x[idx], x_adv[idx], y[idx]
    lo = torch.zeros(idx.numel(), device=x.device, dtype=x.dtype)
    hi = torch.ones_like(lo)
    for _ in range(iters):
        mid = (lo + hi) / 2
        cand = x0 + mid.view(-1, 1, 1, 1) * (xa - x0)
        adv = qm.misclassified(cand, yy)
        hi = torch.where(adv, mid, hi)
        lo = torch.where(adv, lo, mid)
    out = x_adv.clone()
    out[idx] = (x0 + hi.view(-1, 1, 1, 1) * (xa - x0)).clamp(0.0, 1.0)
    return out
