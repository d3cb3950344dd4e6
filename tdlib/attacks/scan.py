"""Batched search engines: first-hit / minimum scans over candidate lists, and bisection."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from tdlib.attacks.checks import predict

__all__ = ["chunk_steps", "classify_candidates", "linear_scan", "refine_blend"]

#: ``make(sel, k0, k1) -> (candidates, valid)``: candidates (len(sel), k1-k0, C, H, W) for steps
#: k0..k1-1 of the samples ``sel`` (indices into the batch); ``valid`` (len(sel), k1-k0) bool marks
#: candidates to query (None = all). Random draws must depend only on the sample and the step.
CandidateFn = Callable[[Tensor, int, int], tuple[Tensor, Tensor | None]]

_ELEMENT_BUDGET = 2**17  # candidate elements per sample and chunk (~0.5 MB in float32)


def chunk_steps(numel: int, n_steps: int) -> int:
    """Steps per chunk for images of ``numel`` elements: a fixed function of the image size only,
    so that random draws (made chunk by chunk) do not depend on the batch."""
    return max(1, min(n_steps, _ELEMENT_BUDGET // max(numel, 1)))


def classify_candidates(model: nn.Module, cands: Tensor, y: Tensor, valid: Tensor | None,
                        batch: int) -> Tensor:
    """(n, K) bool: candidate k of sample i is misclassified (False where not ``valid``)."""
    n, k = cands.shape[:2]
    flat = cands.reshape(n * k, *cands.shape[2:])
    labels = y.repeat_interleave(k)
    adv = torch.zeros(n * k, dtype=torch.bool, device=cands.device)
    if valid is None:
        adv = predict(model, flat, batch) != labels
    else:
        idx = valid.reshape(-1).nonzero().squeeze(1)
        if idx.numel():
            adv[idx] = predict(model, flat[idx], batch) != labels[idx]
    return adv.view(n, k)


def linear_scan(model: nn.Module, x: Tensor, y: Tensor, make: CandidateFn, n_steps: int, *,
                mode: str = "first", batch: int = 1024) -> tuple[Tensor, Tensor]:
    """Scan ``n_steps`` candidates per sample in order.

    Args:
        model: classifier in eval mode.
        x: (N, C, H, W) clean inputs.
        y: (N,) labels.
        make: candidate generator (see ``CandidateFn``).
        n_steps: number of candidates per sample.
        mode: ``"first"`` keeps the first misclassified candidate and stops that sample (foolbox 2
            semantics); ``"min"`` scans everything and keeps the misclassified candidate of
            smallest L2.
        batch: forward-pass chunk size.

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
        adv = classify_candidates(model, cands, y[sel], valid, batch)
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
def refine_blend(model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor, found: Tensor, *,
                 iters: int = 10, batch: int = 1024) -> Tensor:
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
        adv = predict(model, cand, batch) != yy
        hi = torch.where(adv, mid, hi)
        lo = torch.where(adv, lo, mid)
    out = x_adv.clone()
    out[idx] = (x0 + hi.view(-1, 1, 1, 1) * (xa - x0)).clamp(0.0, 1.0)
    return out
