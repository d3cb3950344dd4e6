"""Building blocks shared by every backbone: TF-"SAME" convs and pools, CBR, normalisation,
nearest x2 upsampling, the resolution merge and the Keras-style initialisers.

Everything here is a plain ``nn.Module`` with no hidden state besides its parameters and
buffers, so models built from these blocks can be hooked, copied and moved freely.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tdlib.errors import ConfigError, check_name
from tdlib.names import MERGES


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Return the (before, after) padding TensorFlow's ``padding='SAME'`` uses on one axis.

    TF pads ``max((ceil(size / stride) - 1) * stride + kernel - size, 0)`` cells in total and
    puts the odd cell at the end (bottom/right), unlike PyTorch's symmetric ``padding=k // 2``.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TF "SAME" padding (asymmetric for stride 2, computed per input size).

    For stride 1 and an odd kernel TF's padding is symmetric (``k // 2`` on each side), so the
    convolution pads natively instead of through a padded copy of the input (an ``F.pad`` copy
    forward and a slice backward per layer; measured 2-5% of a NIN-light TD training step).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        native = stride == 1 and kernel_size % 2 == 1
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=kernel_size // 2 if native else 0, bias=True)
        self._native_same = native
        self._pointwise = native and kernel_size == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pointwise and x.ndim == 4 and x.is_contiguous() and x.shape[1] == self.in_channels:
            return _pointwise_conv(x, self.weight, self.bias)
        if self._native_same:
            return self._conv_forward(x, self.weight, self.bias)
        k, s = self.kernel_size[0], self.stride[0]
        top, bottom = tf_same_padding(x.shape[-2], k, s)
        left, right = tf_same_padding(x.shape[-1], k, s)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return self._conv_forward(x, self.weight, self.bias)


def _pointwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 1x1 convolution of an NCHW-contiguous ``x`` as one batched matrix product per image.

    oneDNN runs narrow 1x1 convolutions on NCHW tensors far below its speed elsewhere (LeNetFC's
    6 -> 10 head at 28 x 28, batch 128: 15.5 ms forward + backward, against 1.0 ms as batched
    matrix products, on 2 AMD EPYC cores); channels_last tensors keep the convolution.
    """
    n, c, h, w = x.shape
    co = weight.shape[0]
    mats = weight.view(1, co, c).expand(n, co, c)  # one (co, c) @ (c, h*w) product per image, no copy
    y = torch.bmm(mats, x.view(n, c, h * w)) if bias is None else torch.baddbmm(bias.view(1, co, 1), mats,
                                                                                x.view(n, c, h * w))
    return y.view(n, co, h, w)


class MaxPool2dSame(nn.Module):
    """Max-pool with TF "SAME" padding: padded cells are ``-inf`` and never win."""

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size, self.stride
        top, bottom = tf_same_padding(x.shape[-2], k, s)
        left, right = tf_same_padding(x.shape[-1], k, s)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom), value=-math.inf)
        return F.max_pool2d(x, k, s)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding=SAME"


class CBR(nn.Sequential):
    """Conv k x k (bias, TF "SAME") -> BatchNorm -> ReLU, the unit of LeNetFC and NIN."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bn_momentum: float,
        bn_eps: float,
    ) -> None:
        super().__init__(
            Conv2dSame(in_channels, out_channels, kernel_size),
            nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum),
            # in place: BatchNorm's backward needs its input, not its output
            nn.ReLU(inplace=True),
        )
        self.out_channels = out_channels


class Dropout(nn.Module):
    """Inverted dropout with the same contract as ``nn.Dropout``, and a cheaper mask.

    ``nn.Dropout`` on CPU draws its mask with ``bernoulli_``: 34 ms for one 128x48x28x28 map here,
    15% of a NIN-light TD training step. Here one 64-bit ``random_`` draw gives eight mask bytes,
    and a byte below ``256 * (1 - p)`` keeps its element (exactly ``1 - p`` when ``256 * p`` is
    an integer, e.g. the paper's 0.5; other rates use ``nn.functional.dropout``). The mask is
    laid out in the input's memory format (channels_last included) and kept scaled by
    ``1 / (1 - p)``, so forward and backward are one multiply each. Draws from torch's default
    generator: seeded runs stay reproducible and resume exactly. Identity in eval mode.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"dropout rate must be in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep_bytes = 256.0 * (1.0 - self.p)
        if keep_bytes != int(keep_bytes) or x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        n = x.numel()
        # the full signed range: a bare random_() stops at 2**63 - 1 and never sets the top bit
        words = torch.empty((n + 7) // 8, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
        raw = words.view(torch.uint8)[:n]
        if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            b, c, h, w = x.shape
            raw = raw.view(b, h, w, c).permute(0, 3, 1, 2)
        else:
            raw = raw.view(x.shape)
        scale = (raw < int(keep_bytes)).to(x.dtype).mul_(1.0 / (1.0 - self.p))
        return x * scale

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Normalize(nn.Module):
    """``(x - mean) / std`` with a per-pixel mean (C, H, W) and a per-channel std (C, 1, 1).

    Both buffers always exist (zeros and ones by default) so state-dict keys do not depend on
    whether a dataset mean was given.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels, height, width))
        self.register_buffer("std", torch.ones(channels, 1, 1))

    def set_stats(self, mean: torch.Tensor | None, std: torch.Tensor | None) -> None:
        """Copy ``mean`` ((C,H,W) or (C,)) and ``std`` ((C,) or (C,1,1)) into the buffers."""
        c, h, w = self.mean.shape
        if mean is not None:
            m = torch.as_tensor(mean, dtype=torch.float32)
            if m.shape == (c,):
                m = m.view(c, 1, 1).expand(c, h, w)
            if m.shape != (c, h, w):
                raise ConfigError(f"mean must have shape ({c},) or ({c}, {h}, {w}); got {tuple(m.shape)}")
            self.mean.copy_(m)
        if std is not None:
            s = torch.as_tensor(std, dtype=torch.float32)
            if s.shape not in ((c,), (c, 1, 1)):
                raise ConfigError(f"std must be per channel, shape ({c},) or ({c}, 1, 1); got {tuple(s.shape)}")
            if not bool((s > 0).all()):
                raise ConfigError("std must be positive")
            self.std.copy_(s.view(c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Upsample2x(nn.Module):
    """Nearest-neighbour x2 upsampling (TF ``resize(..., 'nearest')`` with half-pixel centres)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest")


def merged_channels(method: str, channels: int) -> int:
    """Channels after combining an upsampled stream and a side branch of ``channels`` each."""
    check_name("merge", method, MERGES)
    return channels if method == "add" else 2 * channels


class ResolutionMerge(nn.Module):
    """Fuse the upsampled main stream ``u`` with the side branch ``s`` of pyramid level ``scale``.

    ``add`` -> ``u + s``; ``concat`` -> ``cat([u, s])``; ``add_concat`` (the released TD) ->
    ``cat([u + s, s])``; then ``post`` (the merge conv that restores ``channels``).
    While ``silenced`` is set the side branch contributes zeros (scale-removal ablation).
    """

    def __init__(self, method: str, channels: int, post: nn.Module, *, scale: int) -> None:
        super().__init__()
        self.method = check_name("merge", method, MERGES)
        self.channels = channels
        self.in_channels = merged_channels(method, channels)
        self.scale = scale
        self.silenced = False
        self.post = post

    def combine(self, u: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Return the combined tensor before the merge conv."""
        if self.silenced:
            s = torch.zeros_like(s)
        if self.method == "add":
            return u + s
        if self.method == "concat":
            return torch.cat([u, s], dim=1)
        return torch.cat([u + s, s], dim=1)

    def forward(self, u: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.post(self.combine(u, s))
        return out

    def extra_repr(self) -> str:
        return f"method={self.method}, channels={self.channels}, scale={self.scale}"


def init_glorot(module: nn.Module) -> None:
    """Keras defaults: glorot-uniform conv/dense kernels, zero biases (LeNetFC, NIN)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def init_he(module: nn.Module) -> None:
    """Keras ``he_normal`` (TF 1.14): truncated normal, std sqrt(2 / fan_in), zero biases.

    Keras truncates at 2 std and rescales the std by 1/0.8796 so the truncated distribution
    keeps variance 2 / fan_in, i.e. the same variance as ``kaiming_normal_(mode='fan_in')``.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            std = math.sqrt(2.0 / fan_in) / 0.87962566103423978
            _truncated_normal_(m.weight, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@torch.no_grad()
def _truncated_normal_(w: torch.Tensor, std: float) -> None:
    """Fill ``w`` with N(0, std) truncated to +-2 std by inverse-CDF sampling.

    (``nn.init.trunc_normal_`` of recent torch versions resamples in a loop, which makes
    building the ResNets take seconds.)
    """
    lo = 0.5 * (1 + math.erf(-2 / math.sqrt(2)))
    u = torch.empty_like(w).uniform_(lo, 1 - lo)
    w.copy_(torch.special.ndtri(u) * std)
