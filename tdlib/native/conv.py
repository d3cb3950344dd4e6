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
    ``k // 2``); its weights are copied and packed once.
    """

    packed: Tensor
    packed_bias: Tensor
    weight: Tensor
    bias: Tensor

    def __init__(self, conv: nn.Conv2d, *, relu: bool) -> None:
        super().__init__()
        lib = library()
        if lib is None:
            raise RuntimeError("tdlib.native: the compiled library is not available")
        k = conv.kernel_size[0]
        if (conv.kernel_size != (k, k) or k % 2 == 0 or conv.stride != (1, 1) or conv.dilation != (1, 1)
                or conv.groups != 1 or conv.padding != (k // 2, k // 2) or conv.padding_mode != "zeros"):
            raise ValueError(f"NarrowConv takes stride-1 'same' convolutions with an odd square kernel; got {conv}")
        self._lib = lib
        self.block = int(lib.tdlib_conv_block())
        self.max_width = int(lib.tdlib_conv_max_width())
        self.in_channels, self.out_channels, self.k, self.relu = conv.in_channels, conv.out_channels, k, relu
        w = conv.weight.detach().to("cpu", torch.float32)
        b = conv.bias.detach().to("cpu", torch.float32) if conv.bias is not None else torch.zeros(w.shape[0])
        blocks = -(-self.out_channels // self.block)
        wp = torch.zeros(blocks * self.block, *w.shape[1:])
        wp[: self.out_channels] = w
        # [block][ci][k][k][CB]: the CB weights of one tap next to each other
        # (flat: Module.to(memory_format=...) would re-lay a 4-d buffer out and refuses a 5-d one)
        packed = wp.view(blocks, self.block, self.in_channels, k, k).permute(0, 2, 3, 4, 1).reshape(-1).clone()
        bias = torch.zeros(blocks * self.block)
        bias[: self.out_channels] = b
        self.register_buffer("packed", packed, persistent=False)
        self.register_buffer("packed_bias", bias, persistent=False)
        self.register_buffer("weight", w.reshape(-1).clone(), persistent=False)  # (co, ci, k, k), flat
        self.register_buffer("bias", b.clone(), persistent=False)

    def _run(self, x: Tensor, y: Tensor, phases: Tensor | None, strides: Tensor | None) -> None:
        n, _, h, w = x.shape
        if self.k == 1 and phases is None:
            self._lib.tdlib_conv1x1_nchw(x.data_ptr(), n, self.in_channels, h * w, self.weight.data_ptr(),
                                         self.out_channels, self.bias.data_ptr(), int(self.relu), y.data_ptr())
            return
        status = self._lib.tdlib_conv_nchw(
            x.data_ptr(), n, self.in_channels, h, w, self.packed.data_ptr(), self.out_channels, self.k,
            self.packed_bias.data_ptr(), None if phases is None else phases.data_ptr(),
            None if strides is None else strides.data_ptr(), int(self.relu), y.data_ptr())
        if status != 0:
            raise MemoryError("tdlib.native: no memory for the convolution's padded image")

    def forward(self, x: Tensor, phases: Tensor | None = None) -> Tensor:
        """``relu?(conv(x) + up(phases))``; ``phases`` (N, 4 C_out, H / 2, W / 2), any strides, holds
        in channel ``4 c + 2 di + dj`` the value of output row ``2 i + di``, column ``2 j + dj`` of
        channel ``c`` (the polyphase convolution of an upsampled stream), or None."""
        if (x.ndim != 4 or x.dtype != torch.float32 or x.device.type != "cpu" or x.shape[1] != self.in_channels
                or x.shape[3] > self.max_width):
            raise ValueError(f"NarrowConv: expected a CPU float32 (N, {self.in_channels}, H, W <= {self.max_width}) "
                             f"tensor; got {x.dtype} {tuple(x.shape)} on {x.device}")
        x = x.contiguous()
        n, _, h, w = x.shape
        strides = None
        if phases is not None:
            want = (n, 4 * self.out_channels, h // 2, w // 2)
            bad = tuple(phases.shape) != want or phases.dtype != torch.float32 or phases.device != x.device
            if h % 2 or w % 2 or bad:
                raise ValueError(f"NarrowConv: phases must be float32 {want} on {x.device} for an even-sized "
                                 f"{tuple(x.shape)} input; got {phases.dtype} {tuple(phases.shape)}")
            strides = torch.tensor(phases.stride(), dtype=torch.int64)
        y = torch.empty(n, self.out_channels, h, w)
        self._run(x, y, phases, strides)
        return y

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.k}, relu={self.relu}"
