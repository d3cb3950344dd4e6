"""Blur and contrast-reduction attacks as batched first-hit scans (foolbox 2 semantics).

foolbox 3 runs these scans on the whole batch until every sample is broken, so one robust image
keeps the model busy for all the others; here each sample leaves the scan at its first hit
(:func:`tdlib.attacks.scan.linear_scan`), which gives the same per-sample result.

* Gaussian blur: ``sigma_k = (k / steps) * max(H, W)`` for k = 1..steps on both spatial axes,
  ``scipy.ndimage.gaussian_filter`` (mode 'reflect', truncate 4), clipped; as foolbox 2/3.
* Contrast reduction: ``(1 - e_k) x + e_k * 0.5`` with ``e_k = k / steps``, k = 1..steps; as
  foolbox 2 (foolbox 3 scans k = 0..steps-1).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from tdlib.attacks.base import AttackContext
from tdlib.attacks.scan import linear_scan

__all__ = ["contrast_reduction", "gaussian_blur"]


def gaussian_blur(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """First-hit scan over increasing Gaussian blur."""
    from scipy.ndimage import gaussian_filter

    x_np = x.detach().cpu().numpy()
    max_sigma = float(max(x.shape[2], x.shape[3]))

    def make(sel: Tensor, k0: int, k1: int) -> tuple[Tensor, None]:
        out = np.empty((sel.numel(), k1 - k0, *x_np.shape[1:]), dtype=x_np.dtype)
        for a, i in enumerate(sel.tolist()):
            for b, k in enumerate(range(k0 + 1, k1 + 1)):
                s = k / ctx.steps * max_sigma
                out[a, b] = gaussian_filter(x_np[i], (0.0, s, s))
        return torch.from_numpy(out).to(x.device).clamp_(0.0, 1.0), None

    return linear_scan(ctx.model, x, y, make, ctx.steps, batch=ctx.eval_batch)


def contrast_reduction(ctx: AttackContext, x: Tensor, y: Tensor,
                       index: Tensor) -> tuple[Tensor, Tensor]:
    """First-hit scan towards uniform grey."""

    def make(sel: Tensor, k0: int, k1: int) -> tuple[Tensor, None]:
        e = torch.arange(k0 + 1, k1 + 1, device=x.device, dtype=x.dtype) / ctx.steps
        e = e.view(1, -1, 1, 1, 1)
        return ((1 - e) * x[sel].unsqueeze(1) + e * 0.5).clamp(0.0, 1.0), None

    return linear_scan(ctx.model, x, y, make, ctx.steps, batch=ctx.eval_batch)
