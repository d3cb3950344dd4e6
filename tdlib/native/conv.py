"""Narrow convolutions in C (``conv.c``) for the attack query graphs: inference only.

:class:`NarrowConv` is a stride-1, zero-padded ("same") convolution with an odd square kernel,
optionally followed by ReLU, on NCHW float32 tensors whose rows are at most
``tdlib_conv_max_width()`` pixels wide. On 2 AMD EPYC cores (AVX-512, one thread) it ran LeNetFC's
full-resolution 6 -> 6 5x5 convolution over 64 images in 1.0 ms, against 1.6 ms for oneDNN on the
2 x 2 space-to-depth image and 2.3 ms on the plain one; its 3x3 in 0.45 against 1.0 ms. 1x1
convolutions take a path of their own (each image one row of pixels, no padding).
:func:`narrow_conv_available` says whether the library was built with 16-float vectors (AVX-512),
the only build whose speed was measured; elsewhere the query graphs keep oneDNN.

It runs on one thread: at two threads a batch split between two workers (the C call releases
the GIL) ran slower than one, against torch's spinning OpenMP threads, and a whole query forward
at two threads was as fast with it as with oneDNN on the space-to-depth image. Results equal
``F.conv2d``'s to float rounding (another summation order).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tdlib.native.build import library

__all__ = ["NarrowConv", "narrow_conv_available"]


def narrow_conv_available() -> bool:
    """The compiled convolution exists and uses 16-float vectors (the measured build)."""
    lib = library()
    return lib is not None and int(lib.tdlib_conv_lanes()) == 16


class NarrowConv(nn.Module):
    """``relu?(conv2d(x, weight, bias, padding=k // 2))`` in C (see the module docstring).

    Built from a ``nn.Conv2d`` (stride 1, dilation 1, one group, odd square kernel, zero padding
    ``k // 2``); its weights are copied and packed once. With ``up_channels`` = U > 0 the last U
    input channels of ``conv`` read a second input at half the resolution, nearest-upsampled x2
    inside the C loop (the main stream of a top-down merge): ``forward(x, u)`` computes
    ``conv(cat([x, up2(u)]))`` without making the upsampled or the concatenated tensor. Inputs come
    in any strides (the C loop copies them into its padded image); the output is NCHW.
    """

    packed: Tensor
    packed_bias: Tensor
    weight: Tensor
    bias: Tensor

    def __init__(self, conv: nn.Conv2d, *, relu: bool, up_channels: int = 0) -> None:
        super().__init__()
        lib = library()
        if lib is None:
            raise RuntimeError("tdlib.native: the compiled library is not available")
        k = conv.kernel_size[0]
        if (conv.kernel_size != (k, k) or k % 2 == 0 or conv.stride != (1, 1) or conv.dilation != (1, 1)
                or conv.groups != 1 or conv.padding != (k // 2, k // 2) or conv.padding_mode != "zeros"):
            raise ValueError(f"NarrowConv takes stride-1 'same' convolutions with an odd square kernel; got {conv}")
        if not 0 <= up_channels < conv.in_channels or (up_channels and k == 1):
            raise ValueError(f"NarrowConv: up_channels must be in [0, {conv.in_channels}) and 0 for a 1x1 kernel; "
                             f"got {up_channels}")
        self._lib = lib
        self.block = int(lib.tdlib_conv_block())
        self.max_width = int(lib.tdlib_conv_max_width())
        self.up_channels = up_channels
        self.in_channels = conv.in_channels - up_channels  # of x; u brings the rest
        self.out_channels, self.k, self.relu = conv.out_channels, k, relu
        w = conv.weight.detach().to("cpu", torch.float32)
        b = conv.bias.detach().to("cpu", torch.float32) if conv.bias is not None else torch.zeros(w.shape[0])
        blocks = -(-self.out_channels // self.block)
        wp = torch.zeros(blocks * self.block, *w.shape[1:])
        wp[: self.out_channels] = w
        # [block][ci][k][k][CB]: the CB weights of one tap next to each other
        # (flat: Module.to(memory_format=...) would re-lay a 4-d buffer out and refuses a 5-d one)
        packed = wp.view(blocks, self.block, conv.in_channels, k, k).permute(0, 2, 3, 4, 1).reshape(-1).clone()
        bias = torch.zeros(blocks * self.block)
        bias[: self.out_channels] = b
        self.register_buffer("packed", packed, persistent=False)
        self.register_buffer("packed_bias", bias, persistent=False)
        self.register_buffer("weight", w.reshape(-1).clone(), persistent=False)  # (co, ci, k, k), flat
        self.register_buffer("bias", b.clone(), persistent=False)

    def _run(self, x: Tensor, y: Tensor, u: Tensor | None) -> None:
        n, _, h, w = x.shape
        if self.k == 1:
            self._lib.tdlib_conv1x1_nchw(x.data_ptr(), n, self.in_channels, h * w, self.weight.data_ptr(),
                                         self.out_channels, self.bias.data_ptr(), int(self.relu), y.data_ptr())
            return
        strides = torch.tensor([*x.stride(), *(u.stride() if u is not None else (0,) * 4)], dtype=torch.int64)
        addr = strides.data_ptr()
        status = self._lib.tdlib_conv_nchw(
            x.data_ptr(), addr, n, self.in_channels, h, w, None if u is None else u.data_ptr(),
            addr + 4 * strides.element_size(), self.up_channels, self.packed.data_ptr(), self.out_channels, self.k,
            self.packed_bias.data_ptr(), int(self.relu), y.data_ptr())
        if status != 0:
            raise MemoryError("tdlib.native: no memory for the convolution's padded image")

    def forward(self, x: Tensor, u: Tensor | None = None) -> Tensor:
        """``relu?(conv(cat([x, up2(u)])))``; ``u`` (N, U, H / 2, W / 2), any strides, exactly when
        the module was built with ``up_channels`` = U > 0."""
        if (x.ndim != 4 or x.dtype != torch.float32 or x.device.type != "cpu" or x.shape[1] != self.in_channels
                or x.shape[3] > self.max_width):
            raise ValueError(f"NarrowConv: expected a CPU float32 (N, {self.in_channels}, H, W <= {self.max_width}) "
                             f"tensor; got {x.dtype} {tuple(x.shape)} on {x.device}")
        n, _, h, w = x.shape
        if self.up_channels or u is not None:
            want = (n, self.up_channels, h // 2, w // 2)
            if (u is None or h % 2 or w % 2 or tuple(u.shape) != want or u.dtype != torch.float32
                    or u.device != x.device):
                got = "None" if u is None else f"{u.dtype} {tuple(u.shape)}"
                raise ValueError(f"NarrowConv: u must be float32 {want} on {x.device} for an even-sized "
                                 f"{tuple(x.shape)} input (built with up_channels={self.up_channels}); got {got}")
        if self.k == 1:  # one row of h * w pixels per image: NCHW
            x = x.contiguous()
        y = torch.empty(n, self.out_channels, h, w)
        self._run(x, y, u)
        return y

    def extra_repr(self) -> str:
        up = f", up_channels={self.up_channels}" if self.up_channels else ""
        return f"{self.in_channels + self.up_channels}, {self.out_channels}, kernel_size={self.k}, relu={self.relu}{up}"
