"""The TD input pyramid: every level is downscaled directly from the full-resolution image.

Level ``i`` has size ``H / 2**i``; level 0 is the image itself. Methods:

* ``gaussian`` (default): an exact port of TF's ``image.resize(method='gaussian',
  antialias=True)`` as used by the reference (``downscale_tf``): separable, half-pixel
  centres, a Gaussian of sigma = f/2 input pixels cut at +-1.5 f, taps outside the image
  dropped and each row renormalised. Implemented as two explicit resampling matrices per level
  ("Option B" of the pyramid notes), applied rows first like TF; float32 error ~2e-7.
* ``noblur``: plain subsampling ``x[::f, ::f]``.
* ``pool``: f x f max-pool with stride f.
* ``antialias``: Zhang (2019) blur-pool as in the reference LeNet TD: 2x2 max-pool with
  stride 1 (TF "SAME"), a 5x5 Gaussian of sigma 0.6 with zero padding (not renormalised),
  then ``[::2, ::2]``. The reference applies this f=2 step repeatedly for deeper levels; so do
  we (still starting from the full-resolution image for every level).

All methods are differentiable (gradients of attacks and Grad-CAM go through them).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tdlib.errors import ConfigError, check_name
from tdlib.names import PYRAMIDS

_TF_GAUSS_RADIUS = 1.5  # kernel support in (stretched) kernel units, sigma = radius / 3


def tf_gaussian_matrix(n_in: int, factor: int) -> torch.Tensor:
    """Return the (n_in // factor, n_in) float64 matrix of TF's antialiased gaussian resize.

    Row ``o`` is centred at ``c = (o + 0.5) * f``; input pixel ``i`` (centre ``i + 0.5``) gets
    ``exp(-2 t**2)`` with ``t = (i + 0.5 - c) / f`` for ``|t| < 1.5``; taps outside
    ``[0, n_in)`` are dropped and the row is renormalised to sum 1.
    """
    if factor < 1 or n_in % factor:
        raise ConfigError(f"size {n_in} is not divisible by the downscale factor {factor}")
    n_out = n_in // factor
    inv = n_in / n_out
    stretch = max(inv, 1.0)
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for o in range(n_out):
        c = (o + 0.5) * inv
        lo = max(math.ceil(c - _TF_GAUSS_RADIUS * stretch - 0.5), 0)
        hi = min(math.floor(c + _TF_GAUSS_RADIUS * stretch - 0.5), n_in - 1)
        for i in range(lo, hi + 1):
            t = (i + 0.5 - c) / stretch
            if abs(t) < _TF_GAUSS_RADIUS:
                m[o, i] = math.exp(-2.0 * t * t)
        m[o] /= m[o].sum()
    return m


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian on integer offsets ``-ceil(3 sigma) .. ceil(3 sigma)`` (float64)."""
    r = math.ceil(3 * sigma)
    d = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-(d**2) / (2 * sigma**2))
    return g / g.sum()


class Pyramid(nn.Module):
    """Compute pyramid levels of a (normalised) full-resolution batch.

    Args:
        method: one of :data:`PYRAMIDS`.
        height: full-resolution height.
        width: full-resolution width.
        num_scales: number of levels including the full-resolution one.
    """

    blur: torch.Tensor

    def __init__(self, method: str, height: int, width: int, num_scales: int) -> None:
        super().__init__()
        self.method = check_name("pyramid", method, PYRAMIDS)
        self.num_scales = num_scales
        self.size = (height, width)
        f_max = 2 ** (num_scales - 1)
        if height % f_max or width % f_max:
            raise ConfigError(f"input size {height}x{width} is not divisible by {f_max}")
        # Non-persistent: the matrices are a function of the configuration, not learned state,
        # so checkpoints stay interchangeable between pyramid methods.
        for i in range(1, num_scales):
            f = 2**i
            self.register_buffer(f"rows_{i}", tf_gaussian_matrix(height, f).float(), persistent=False)
            self.register_buffer(f"cols_{i}", tf_gaussian_matrix(width, f).float(), persistent=False)
        g = gaussian_kernel(0.6)
        self.register_buffer("blur", torch.outer(g, g).float()[None, None], persistent=False)

    def level(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        """Return pyramid level ``scale`` (0 = ``x`` itself) of the full-resolution batch ``x``."""
        if not 0 <= scale < self.num_scales:
            raise ConfigError(f"scale must be in 0..{self.num_scales - 1}; got {scale}")
        if scale == 0:
            return x
        f = 2**scale
        if self.method == "gaussian":
            rows: torch.Tensor = getattr(self, f"rows_{scale}")
            cols: torch.Tensor = getattr(self, f"cols_{scale}")
            return torch.matmul(torch.matmul(rows.to(x.dtype), x), cols.to(x.dtype).t())
        if self.method == "noblur":
            return x[..., ::f, ::f]
        if self.method == "pool":
            return F.max_pool2d(x, f, f)
        for _ in range(scale):
            x = self._blur_pool2(x)
        return x

    def _blur_pool2(self, x: torch.Tensor) -> torch.Tensor:
        """One Zhang-style antialiased x2 step (max-pool s1 SAME, 5x5 blur, subsample)."""
        x = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=-math.inf), 2, 1)
        c = x.shape[1]
        k = self.blur.to(x.dtype).expand(c, 1, -1, -1)
        x = F.conv2d(x, k, padding=k.shape[-1] // 2, groups=c)
        return x[..., ::2, ::2]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return all levels, full resolution first."""
        return [self.level(x, i) for i in range(self.num_scales)]

    def extra_repr(self) -> str:
        return f"method={self.method}, size={self.size}, num_scales={self.num_scales}"
