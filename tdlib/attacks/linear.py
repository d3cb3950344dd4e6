"""Blur and contrast-reduction attacks as packed first-hit scans (foolbox 2 semantics).

Both scan foolbox 2's grid ``e = np.linspace(0, 1, steps + 1)[1:]`` and keep the first adversarial;
each sample leaves the scan at its first hit (:func:`tdlib.attacks.scan.first_hit`).

* Gaussian blur: ``sigma = e * max(H, W)`` on both spatial axes, as
  ``scipy.ndimage.gaussian_filter(x, (0, sigma, sigma))`` (mode 'reflect', truncate 4) on the CHW
  float32 image, then clipped. The filter is linear, so each sigma is one (H, H) and one (W, W)
  matrix, obtained from scipy itself on the identity, and a batch of candidates is two batched
  matrix products, with the float32 rounding between the two axis passes that scipy has. Sigmas
  whose kernel has radius 0 leave the image unchanged and are never queried.
* Contrast reduction: ``(1 - e) x + e * 0.5`` in float32 as foolbox 2 computes it (foolbox 3 scans
  e = 0..(steps-1)/steps instead).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from tdlib.attacks.base import AttackContext
from tdlib.attacks.scan import epsilon_grid, first_hit

__all__ = ["blur_matrix", "contrast_reduction", "gaussian_blur"]


def blur_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) float64 ``M`` with ``gaussian_filter1d(v, sigma, mode='reflect', truncate=4) = M @ v``."""
    from scipy.ndimage import gaussian_filter1d  # lazy: ~0.2 s; importing tdlib.attacks does not need it

    if sigma <= 1e-15:  # scipy skips such axes
        return np.eye(n)
    return gaussian_filter1d(np.eye(n), sigma, axis=0, mode="reflect", truncate=4.0)


class _BlurBank:
    """Row / column blur matrices per scan step, computed on first use."""

    def __init__(self, h: int, w: int, steps: int, device: torch.device) -> None:
        self.h, self.w, self.device = h, w, device
        self.sigmas = epsilon_grid(steps) * max(h, w)
        # radius int(4 sigma + 0.5) = 0: the kernel is [1.0] and the image stays as it is
        self.identity = torch.from_numpy((4.0 * self.sigmas + 0.5).astype(np.int64) == 0).to(device)
        self._cache: dict[int, tuple[Tensor, Tensor]] = {}

    def get(self, steps: Tensor) -> tuple[Tensor, Tensor]:
        """(M, H, H) and (M, W, W) float64 matrices of the given steps."""
        uniq, inv = torch.unique(steps, return_inverse=True)
        rows, cols = [], []
        for k in uniq.tolist():
            if k not in self._cache:
                s = float(self.sigmas[k])
                mh = torch.from_numpy(blur_matrix(self.h, s)).to(self.device)
                mw = mh if self.w == self.h else torch.from_numpy(blur_matrix(self.w, s)).to(self.device)
                self._cache[k] = (mh, mw)
            rows.append(self._cache[k][0])
            cols.append(self._cache[k][1])
        return torch.stack(rows)[inv], torch.stack(cols)[inv]


def gaussian_blur(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """First-hit scan over increasing Gaussian blur (foolbox 2 GaussianBlurAttack)."""
    del index
    _, _, h, w = x.shape
    bank = _BlurBank(h, w, ctx.steps, x.device)
    x64 = x.double()

    def make(rows: Tensor, steps: Tensor) -> tuple[Tensor, Tensor]:
        mh, mw = bank.get(steps)
        tmp = torch.matmul(mh[:, None], x64[rows]).float().double()  # pass along H, stored float32
        out = torch.matmul(tmp, mw[:, None].transpose(-1, -2)).float()
        return out.clamp_(0.0, 1.0), ~bank.identity[steps]  # the clean image is not adversarial

    step, x_hit = first_hit(ctx.qmodel, x, y, ctx.steps, make)
    return x_hit, step >= 0


def contrast_reduction(ctx: AttackContext, x: Tensor, y: Tensor,
                       index: Tensor) -> tuple[Tensor, Tensor]:
    """First-hit scan towards uniform grey (foolbox 2 ContrastReductionAttack)."""
    del index
    eps = epsilon_grid(ctx.steps)
    keep = torch.from_numpy(1.0 - eps).float().to(x.device)  # numpy rounds the scalars to float32
    grey = torch.from_numpy(eps * 0.5).float().to(x.device)

    def make(rows: Tensor, steps: Tensor) -> tuple[Tensor, None]:
        cand = keep[steps].view(-1, 1, 1, 1) * x[rows]
        return (cand + grey[steps].view(-1, 1, 1, 1)).clamp_(0.0, 1.0), None

    step, x_hit = first_hit(ctx.qmodel, x, y, ctx.steps, make)
    return x_hit, step >= 0
