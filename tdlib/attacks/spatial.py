"""foolbox 2's SpatialAttack (rotations + translations) and its ShiftsAttack, re-implemented.

The grid is linspace(-5, 5, 10) for the row shift, the column shift (pixels) and the angle
(degrees); 0 is not on it. Candidates come in itertools.product(rows, cols, angles) order, the angle
fastest; each is ``scipy.ndimage.rotate(order=1, reshape=True)`` then ``shift(order=3,
mode='constant')`` on the HWC image, cropped back to the centre and clipped (attack-notes 2.9).
foolbox 3's SpatialAttack uses another grid, order and interpolation, hence the re-implementation.
``paper``: the first hit wins; ``minimal``: the hit of smallest L2 over the whole grid.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from tdlib.attacks.base import AttackContext
from tdlib.attacks.scan import linear_scan

__all__ = ["shifts", "spatial", "spatial_grid", "transform_image"]

GRID = np.linspace(-5.0, 5.0, 10)


def spatial_grid(rotations: bool) -> list[tuple[float, float, float]]:
    """(row shift, column shift, angle) triples in foolbox 2's order."""
    angles = GRID if rotations else np.zeros(1)
    return [(float(a), float(b), float(c)) for a, b, c in itertools.product(GRID, GRID, angles)]


def _crop_center(img: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    start = [(a - b) // 2 for a, b in zip(img.shape, shape, strict=True)]
    return img[tuple(slice(s, s + n) for s, n in zip(start, shape, strict=True))]


def transform_image(img: np.ndarray, drow: float, dcol: float, angle: float,
                    rotated: np.ndarray | None = None) -> np.ndarray:
    """One candidate from an (H, W, C) image; ``rotated`` may pass a cached rotation."""
    out = img
    if angle != 0.0:
        out = rotated if rotated is not None else ndimage.rotate(
            img, angle, axes=(0, 1), reshape=True, order=1)
    out = ndimage.shift(out, (drow, dcol, 0.0), order=3, mode="constant")
    return np.clip(_crop_center(out, img.shape), 0.0, 1.0)


def _spatial(ctx: AttackContext, x: Tensor, y: Tensor, rotations: bool) -> tuple[Tensor, Tensor]:
    grid = spatial_grid(rotations)
    imgs = x.permute(0, 2, 3, 1).detach().cpu().numpy().astype(np.float64)
    angles = GRID if rotations else np.zeros(1)
    cache: dict[tuple[int, int], np.ndarray] = {}

    def rotated(i: int, angle: float) -> np.ndarray | None:
        if angle == 0.0:
            return None
        key = (i, int(np.argmin(np.abs(angles - angle))))
        if key not in cache:
            cache[key] = ndimage.rotate(imgs[i], angle, axes=(0, 1), reshape=True, order=1)
        return cache[key]

    def make(sel: Tensor, k0: int, k1: int) -> tuple[Tensor, None]:
        out = np.empty((sel.numel(), k1 - k0, *imgs.shape[1:]), dtype=np.float32)
        for a, i in enumerate(sel.tolist()):
            for b, (dr, dc, ang) in enumerate(grid[k0:k1]):
                out[a, b] = transform_image(imgs[i], dr, dc, ang, rotated(i, ang))
        return torch.from_numpy(out).permute(0, 1, 4, 2, 3).to(x.device, x.dtype), None

    mode = "min" if ctx.protocol == "minimal" else "first"
    return linear_scan(ctx.model, x, y, make, len(grid), mode=mode, batch=ctx.eval_batch)


def spatial(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """Rotations and translations (foolbox 2 SpatialAttack defaults); deterministic."""
    del index
    return _spatial(ctx, x, y, rotations=True)


def shifts(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """Translations only (the paper's ShiftsAttack = SpatialAttack(do_rotations=False))."""
    del index
    return _spatial(ctx, x, y, rotations=False)
