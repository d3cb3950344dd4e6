"""foolbox 2's SpatialAttack (rotations + translations) and its ShiftsAttack, re-implemented.

The grid is linspace(-5, 5, 10) for the row shift, the column shift (pixels) and the angle
(degrees); 0 is not on it. Candidates come in itertools.product(rows, cols, angles) order, the angle
fastest; each is ``scipy.ndimage.rotate(order=1, reshape=True)`` then ``shift(order=3,
mode='constant')`` on the CHW image, cropped back to the centre and clipped (attack-notes 2.9).
foolbox 3's SpatialAttack uses another grid, order and interpolation, hence the re-implementation.
:func:`spatial` / :func:`shifts` (``paper``): the first hit wins; :func:`minimal_spatial` /
:func:`minimal_shifts` (``minimal``): the hit of smallest L2 over the whole grid.

The rotation of each (sample, angle) is computed once with scipy. The spline shift is linear and
separable, so each shift is one matrix per axis (scipy's own 1-D shift of the unit vectors,
cropped), and a batch of candidates is two batched matrix products in float64, rounded to float32
once as scipy does. foolbox 2's ShiftsAttack also "rotates" by 0 degrees, which is the identity.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import Tensor

from tdlib.attacks.base import AttackContext
from tdlib.attacks.scan import first_hit, linear_scan

__all__ = ["GRID", "minimal_shifts", "minimal_spatial", "shift_matrix", "shifts", "spatial", "spatial_grid",
           "transform_image"]

GRID = np.linspace(-5.0, 5.0, 10)


def spatial_grid(rotations: bool) -> list[tuple[float, float, float]]:
    """(row shift, column shift, angle) triples in foolbox 2's order."""
    angles = GRID if rotations else np.zeros(1)
    return [(float(a), float(b), float(c)) for a, b, c in itertools.product(GRID, GRID, angles)]


def _crop_center(img: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    start = [(a - b) // 2 for a, b in zip(img.shape, shape, strict=True)]
    return img[tuple(slice(s, s + n) for s, n in zip(start, shape, strict=True))]


def transform_image(img: np.ndarray, drow: float, dcol: float, angle: float) -> np.ndarray:
    """One candidate from a (C, H, W) image, with scipy exactly as foolbox 2 computes it."""
    from scipy import ndimage  # lazy: ~0.2 s; importing tdlib.attacks does not need it

    out = ndimage.rotate(img, angle, axes=(1, 2), reshape=True, order=1)
    out = ndimage.shift(out, (0.0, drow, dcol), mode="constant")
    return np.clip(_crop_center(out, img.shape), 0.0, 1.0)


def shift_matrix(n: int, d: float, keep: int) -> np.ndarray:
    """(keep, n) float64: ``ndimage.shift(v, d, order=3, mode='constant')`` of a length-``n`` vector,
    cropped to its centre ``keep`` values (foolbox 2's crop), as a matrix."""
    from scipy import ndimage  # lazy (see transform_image)

    eye = np.eye(n)
    m = np.stack([ndimage.shift(eye[j], d, order=3, mode="constant") for j in range(n)], axis=1)
    start = (n - keep) // 2
    return m[start:start + keep]


class _Transforms:
    """Rotations per (sample, angle) and shift matrices per (size, shift), made on first use."""

    def __init__(self, x: Tensor, rotations: bool) -> None:
        self.imgs = x.detach().cpu().numpy()
        self.grid = spatial_grid(rotations)
        self.angles = GRID if rotations else np.zeros(1)
        self.h, self.w = x.shape[2], x.shape[3]
        self.device = x.device
        self._rot: dict[tuple[int, int], Tensor] = {}
        self._shift: dict[tuple[int, int, int], Tensor] = {}

    def rotated(self, i: int, a: int) -> Tensor:
        if (i, a) not in self._rot:
            from scipy import ndimage  # lazy (see transform_image)

            angle = float(self.angles[a])
            img = self.imgs[i] if angle == 0.0 else ndimage.rotate(
                self.imgs[i], angle, axes=(1, 2), reshape=True, order=1)
            self._rot[(i, a)] = torch.from_numpy(np.ascontiguousarray(img)).double().to(self.device)
        return self._rot[(i, a)]

    def shift(self, n: int, d: int, keep: int) -> Tensor:
        if (n, d, keep) not in self._shift:
            self._shift[(n, d, keep)] = torch.from_numpy(shift_matrix(n, GRID[d], keep)).to(self.device)
        return self._shift[(n, d, keep)]

    def make(self, rows: Tensor, steps: Tensor) -> Tensor:
        """Candidates (M, C, H, W) float32 for the (sample, grid step) pairs."""
        n_ang = len(self.angles)
        out = torch.empty((rows.numel(), self.imgs.shape[1], self.h, self.w), device=self.device)
        ia, ic, ir = steps % n_ang, (steps // n_ang) % len(GRID), steps // (n_ang * len(GRID))
        for a in torch.unique(ia).tolist():
            sel = (ia == a).nonzero().squeeze(1)
            rot = torch.stack([self.rotated(int(i), a) for i in rows[sel].tolist()])
            hh, ww = rot.shape[2], rot.shape[3]
            mr = torch.stack([self.shift(hh, int(d), self.h) for d in ir[sel].tolist()])
            mc = torch.stack([self.shift(ww, int(d), self.w) for d in ic[sel].tolist()])
            res = torch.matmul(torch.matmul(mr[:, None], rot), mc[:, None].transpose(-1, -2))
            out[sel] = res.float().clamp_(0.0, 1.0)
        return out


def _first_hit(ctx: AttackContext, x: Tensor, y: Tensor, rotations: bool) -> tuple[Tensor, Tensor]:
    tr = _Transforms(x, rotations)
    step, x_hit = first_hit(ctx.qmodel, x, y, len(tr.grid), lambda r, s: (tr.make(r, s), None))
    return x_hit, step >= 0


def _minimal(ctx: AttackContext, x: Tensor, y: Tensor, rotations: bool) -> tuple[Tensor, Tensor]:
    tr = _Transforms(x, rotations)

    def make_chunk(sel: Tensor, k0: int, k1: int) -> tuple[Tensor, None]:
        ks = torch.arange(k0, k1, device=x.device)
        out = tr.make(sel.repeat_interleave(ks.numel()), ks.repeat(sel.numel()))
        return out.view(sel.numel(), ks.numel(), *x.shape[1:]), None

    return linear_scan(ctx.qmodel, x, y, make_chunk, len(tr.grid), mode="min")


def spatial(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """Rotations and translations (foolbox 2 SpatialAttack defaults), first hit; deterministic."""
    del index
    return _first_hit(ctx, x, y, rotations=True)


def shifts(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """Translations only (the paper's ShiftsAttack = SpatialAttack(do_rotations=False)), first hit."""
    del index
    return _first_hit(ctx, x, y, rotations=False)


def minimal_spatial(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """The :func:`spatial` grid, every candidate: the hit of smallest L2 wins (``minimal``)."""
    del index
    return _minimal(ctx, x, y, rotations=True)


def minimal_shifts(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """The :func:`shifts` grid, every candidate: the hit of smallest L2 wins (``minimal``)."""
    del index
    return _minimal(ctx, x, y, rotations=False)
