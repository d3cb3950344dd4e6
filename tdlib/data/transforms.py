"""Batch-level augmentations on float images in [0, 1] (run on the training device).

Per-pixel-mean subtraction is *not* here: it belongs to the model's first layer, so attacks,
distances and CAM overlays all live in [0, 1] pixel space.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F


class BatchTransform(Protocol):
    """A random augmentation of a batch (N, C, H, W) -> (N, C, H', W')."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        ...


def _rand(n: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=generator, device="cpu").to(x.device)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Horizontal flip of each image with probability 1/2."""
    flip = _rand(x.shape[0], x, generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_crop(
    x: torch.Tensor, size: int, generator: torch.Generator | None = None, pad_mode: str | None = None,
    pad: int = 0,
) -> torch.Tensor:
    """Random ``size``×``size`` crop of each image (after optional padding by ``pad``)."""
    if pad:
        x = F.pad(x, (pad, pad, pad, pad), mode=pad_mode or "replicate")
    n, _, h, w = x.shape
    top = (_rand(n, x, generator) * (h - size + 1)).long().clamp_(max=h - size)
    left = (_rand(n, x, generator) * (w - size + 1)).long().clamp_(max=w - size)
    ar = torch.arange(size, device=x.device)
    rows = (top[:, None] + ar[None, :])[:, None, :, None]  # N,1,S,1
    cols = (left[:, None] + ar[None, :])[:, None, None, :]  # N,1,1,S
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return x[batch, chan, rows, cols]


class ShiftFlip:
    """CIFAR10_aug: random shifts up to ``fraction`` of the size (edge pixels repeated, like Keras
    ``fill_mode='nearest'``) and horizontal flips.

    Keras' ImageDataGenerator draws a real-valued shift and interpolates; this draws whole-pixel
    shifts (±3 px at 32×32), a documented simplification.
    """

    def __init__(self, fraction: float = 0.1) -> None:
        self.fraction = fraction

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        m = round(self.fraction * x.shape[-1])
        out = random_crop(x, x.shape[-1], generator, pad_mode="replicate", pad=m) if m else x
        return random_flip(out, generator)

    def __repr__(self) -> str:
        return f"ShiftFlip(fraction={self.fraction})"


def pca_colour(
    x: torch.Tensor, std: float = 0.1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """AlexNet-style colour augmentation on each image's own RGB eigen-decomposition.

    For every image, the 3×3 covariance of its pixels gives eigenvalues λ and eigenvectors v; the
    image is shifted by ``v @ (α * λ)`` with α ~ N(0, std²) per image, then clipped to [0, 1].
    """
    n, c, _, _ = x.shape
    flat = x.reshape(n, c, -1)
    centred = flat - flat.mean(-1, keepdim=True)
    cov = centred @ centred.transpose(1, 2) / max(flat.shape[-1] - 1, 1)
    lam, vec = torch.linalg.eigh(cov.double())
    alpha = torch.randn(n, c, generator=generator, device="cpu").to(x.device, torch.float64) * std
    shift = (vec @ (alpha * lam.clamp(min=0)).unsqueeze(-1)).squeeze(-1).to(x.dtype)
    return (x + shift[:, :, None, None]).clamp_(0.0, 1.0)


class ImagenetteTrain:
    """Imagenette training augmentation: random ``size`` crop (from the stored resize), flip, PCA
    colour jitter (supplement 2.1)."""

    def __init__(self, size: int, pca_std: float = 0.1) -> None:
        self.size = size
        self.pca_std = pca_std

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = pca_colour(x, self.pca_std, generator)
        x = random_flip(x, generator)
        return random_crop(x, self.size, generator)

    def __repr__(self) -> str:
        return f"ImagenetteTrain(size={self.size}, pca_std={self.pca_std})"
