"""Inference-only graphs of a top-down plain network whose narrow full-resolution level runs
either through tdlib's compiled convolution (:class:`NarrowFullResTD`) or space-to-depth
(:class:`SpaceToDepthTD`).

The last level of a PlainTD (LeNetFC, NIN) works at full resolution with the fewest channels (6
in LeNetFC), where CPU convolution kernels use a fraction of their vector width. Run on the 2 x 2
space-to-depth image instead (``pixel_unshuffle``: four times the channels, a quarter of the
positions), a stride-1 k x k convolution becomes a (2R + 1)^2 one, R = ceil((k // 2) / 2), over
the four phases (:func:`s2d_weight`), and the upsampled main stream enters as its polyphase
convolution (:func:`~tdlib.attacks.queries.polyphase_weight`), which *is* the space-to-depth
layout. The graph computes the same function as the model up to float rounding (the query copy
is checked against the model on a probe batch); it skips input validation and stage hooks, which
a private inference copy does not need.

:class:`NarrowFullResTD` keeps that level in NCHW and runs its convolutions with
:class:`~tdlib.native.NarrowConv`, which vectorises over the pixels of a row rather than over
channels: no 4x channel inflation, and the merge is one convolution over the side branch and the
main stream, upsampled as the C loop copies it into its padded image. It is preferred where an
AVX-512 build exists (measured 20% faster per LeNetFC-TD forward on one thread, as fast on two;
the native merge then took a further 5-8% off on one thread, 99 against 107 us per image at batch
512 and 111 against 116 at 64, five alternating runs on 2 AMD EPYC cores: the polyphase
convolution it replaces ran at 28 GFLOP/s, and its output needed a channels-last to NCHW copy).
"""

from __future__ import annotations

import itertools
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tdlib.models.layers import Conv2dSame, Dropout
from tdlib.models.plain import PlainTD
from tdlib.native import NarrowConv, narrow_conv_available

#: full-resolution levels narrower than this (channels; 16 float32 fill one AVX-512 vector) run
#: space-to-depth. Measured: LeNetFC-TD (6 channels) 87 -> 65 ms per 512 images; NIN-light TD
#: (48 channels) 1.40 -> 1.85 s per 1000 images, so it keeps the plain layout.
NARROW = 16

__all__ = ["NARROW", "NarrowFullResTD", "S2DConv", "SpaceToDepthTD", "narrow_full_res_td", "s2d_weight",
           "space_to_depth_td"]


def s2d_weight(w: Tensor) -> tuple[Tensor, int]:
    """Weights of ``conv(x, w)`` (odd k x k, stride 1, zero padding k // 2) acting on
    ``pixel_unshuffle(x, 2)`` and giving ``pixel_unshuffle(conv(x, w), 2)``: channel ``4 c + 2 d_r
    + d_c`` is phase (d_r, d_c) of channel c, as ``pixel_unshuffle`` orders them. Output phase d
    reads input phase e at low-resolution offset L through tap ``2 L + e - d``. Returns
    (weights, padding R)."""
    co, ci, k, _ = w.shape
    r = k // 2
    big = (r + 1) // 2
    out = torch.zeros(co, 2, 2, ci, 2, 2, 2 * big + 1, 2 * big + 1, dtype=w.dtype, device=w.device)
    phases = list(itertools.product(range(2), range(2)))
    offsets = range(-big, big + 1)
    for (dr, dc), (er, ec), lr, lc in itertools.product(phases, phases, offsets, offsets):
        orow, ocol = 2 * lr + er - dr, 2 * lc + ec - dc
        if abs(orow) <= r and abs(ocol) <= r:
            out[:, dr, dc, :, er, ec, lr + big, lc + big] = w[:, :, orow + r, ocol + r]
    return out.reshape(4 * co, 4 * ci, 2 * big + 1, 2 * big + 1), big


class S2DConv(nn.Module):
    """A convolution rewritten for the space-to-depth layout (see :func:`s2d_weight`)."""

    def __init__(self, weight: Tensor, bias: Tensor | None, padding: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.contiguous(), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias.contiguous(), requires_grad=False)
        self.padding = padding

    @classmethod
    def of(cls, conv: nn.Conv2d) -> S2DConv:
        weight, pad = s2d_weight(conv.weight.detach())
        bias = None if conv.bias is None else conv.bias.detach().repeat_interleave(4)
        return cls(weight, bias, pad)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


def _same_conv(m: nn.Module) -> bool:
    """A plain zero-padded stride-1 convolution with an odd square kernel (exact types only)."""
    return (type(m) in (nn.Conv2d, Conv2dSame) and isinstance(m, nn.Conv2d) and m.groups == 1
            and m.kernel_size[0] == m.kernel_size[1] and m.kernel_size[0] % 2 == 1
            and m.stride == (1, 1) and m.dilation == (1, 1) and m.padding_mode == "zeros"
            and m.padding == (m.kernel_size[0] // 2,) * 2)


def _s2d_layers(mod: nn.Module) -> nn.Sequential | None:
    """``mod`` (a chain of convolutions, ReLUs, identities and eval-mode dropouts through plain
    Sequential containers) for the space-to-depth layout; None where some layer is not one of these."""
    from tdlib.attacks.queries import leaves

    layers = leaves(mod)
    if not layers:
        return None
    out: list[nn.Module] = []
    for m in layers:
        if _same_conv(m):
            out.append(S2DConv.of(cast(nn.Conv2d, m)))
        elif type(m) is nn.ReLU:
            out.append(nn.ReLU(inplace=True))
        elif type(m) is nn.Identity or (type(m) in (nn.Dropout, Dropout) and not m.training):
            continue
        else:
            return None
    return nn.Sequential(*out)


def _below_full_resolution(m: PlainTD, x: Tensor) -> tuple[list[Tensor], Tensor]:
    """The pyramid levels of ``x`` and the main stream at half resolution (the adapter's output
    before the last merge, never upsampled), through every level but the full-resolution one."""
    z: Tensor = m.normalize(x)  # every level of forward(x) comes from the same normalised image
    n = m.num_scales
    levels = [m.pyramid.level(z, i) for i in range(n)]
    h = levels[-1]
    for p, stage in enumerate(m.stages[:-1]):
        if p:
            scale = n - 1 - p
            h = m.merge_blocks[p - 1](m.adapters[p - 1](h), m.side_branches[str(scale)](levels[scale]))
        h = stage(h)
    return levels, m.adapters[n - 2](h)


class SpaceToDepthTD(nn.Module):
    """PlainTD inference whose full-resolution level (side branch, merge, stage, head) runs on the
    2 x 2 space-to-depth layout; the lower levels run as in the (prepared) model."""

    def __init__(self, model: PlainTD, side: nn.Sequential, conv_s: nn.Sequential, poly: S2DConv,
                 rest: nn.Sequential, stage: nn.Sequential, head: nn.Sequential) -> None:
        super().__init__()
        self.model = model
        self.side, self.conv_s, self.poly, self.rest = side, conv_s, poly, rest
        self.stage_s2d, self.head = stage, head
        self.num_classes = int(model.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        levels, a = _below_full_resolution(self.model, x)
        full = F.pixel_unshuffle(levels[0], 2)
        if a.is_contiguous(memory_format=torch.channels_last):
            full = full.contiguous(memory_format=torch.channels_last)
        out: Tensor = self.conv_s(self.side(full))
        out = self.rest(out.add_(self.poly(a)))
        logits: Tensor = self.head(self.stage_s2d(out))
        return logits.mean(dim=(2, 3)).view(-1, self.num_classes, 4).mean(dim=2)


def space_to_depth_td(model: nn.Module) -> SpaceToDepthTD | None:
    """The :class:`SpaceToDepthTD` graph of a prepared PlainTD copy, which it takes over
    (BatchNorm folded, merges split and fed before the upsampling:
    :func:`~tdlib.attacks.queries.fuse_upsampling`), or None where some part of its last level is
    not a plain chain of stride-1 convolutions and ReLUs, or where the model's hook points are not
    identities."""
    from tdlib.attacks.queries import UpsampledMerge

    if type(model) is not PlainTD or model.num_scales < 2 or type(model.upsample) is not nn.Identity:
        return None
    if any(type(model.get_submodule(name)) is not nn.Identity for name in model.stage_names):
        return None
    n = model.num_scales
    merge = model.merge_blocks[n - 2]
    if type(merge) is not UpsampledMerge or not _same_conv(merge.conv_s) or merge.conv_s.bias is not None:
        return None
    if merge.conv_s.out_channels >= NARROW:  # wide enough already: 4x the channels only costs
        return None
    side = _s2d_layers(model.side_branches["0"])
    stage = _s2d_layers(model.stages[n - 1])
    head = _s2d_layers(model.head)
    rest = _s2d_layers(merge.rest)
    conv_s = _s2d_layers(nn.Sequential(merge.conv_s))
    if side is None or stage is None or head is None or rest is None or conv_s is None:
        return None
    graph = SpaceToDepthTD(model, side, conv_s, merge.s2d_poly(), rest, stage, head)
    # the graph takes the copy over: its full-resolution modules are never run again
    model.merge_blocks[n - 2] = nn.Identity()
    model.side_branches["0"] = nn.Identity()
    model.stages[n - 1] = nn.Identity()
    setattr(model, "head", nn.Identity())  # noqa: B010 (a typed attribute of PlainTD)
    return graph


class NarrowFullResTD(nn.Module):
    """PlainTD inference whose narrow full-resolution level runs in NCHW through
    :class:`~tdlib.native.NarrowConv` (side branch, merge, stage, head); the lower levels run as in
    the (prepared) model. The merge is one native convolution of the side branch's output and the
    half-resolution main stream, which the C loop upsamples as it copies it into its padded image
    (:meth:`~tdlib.attacks.queries.UpsampledMerge.merged_conv`)."""

    def __init__(self, model: PlainTD, side: nn.Sequential, merge: NarrowConv, rest: nn.Sequential,
                 stage: nn.Sequential, head: nn.Sequential) -> None:
        super().__init__()
        self.model = model
        self.side, self.merge, self.rest = side, merge, rest
        self.stage_nchw, self.head = stage, head

    def forward(self, x: Tensor) -> Tensor:
        levels, a = _below_full_resolution(self.model, x)
        out = self.merge(self.side(levels[0]), a)  # any strides in (a: channels-last from oneDNN)
        logits: Tensor = self.head(self.stage_nchw(self.rest(out)))
        return logits.mean(dim=(2, 3))


def _narrow_layers(mod: nn.Module, width: int) -> list[nn.Module] | None:
    """``mod`` (a chain of 'same' convolutions, ReLUs, identities and eval-mode dropouts through
    plain Sequential containers) for NCHW tensors of ``width`` columns: convolutions as
    :class:`~tdlib.native.NarrowConv` with the ReLU after them fused; None where some layer is none
    of these, or a convolution too wide for the native one."""
    from tdlib.attacks.queries import leaves

    layers = leaves(mod)
    if layers is None:
        return None
    kept = [m for m in layers if not (type(m) is nn.Identity or (type(m) in (nn.Dropout, Dropout) and not m.training))]
    out: list[nn.Module] = []
    i = 0
    while i < len(kept):
        m = kept[i]
        if type(m) is nn.ReLU:
            out.append(nn.ReLU(inplace=True))
            i += 1
            continue
        if not _same_conv(m):
            return None
        conv = cast(nn.Conv2d, m)
        relu_next = i + 1 < len(kept) and type(kept[i + 1]) is nn.ReLU
        native = NarrowConv(conv, relu=relu_next)
        if max(conv.in_channels, conv.out_channels) > 2 * NARROW or width > native.max_width:
            return None
        out.append(native)
        i += 2 if relu_next else 1
    return out


def narrow_full_res_td(model: nn.Module) -> NarrowFullResTD | None:
    """The :class:`NarrowFullResTD` graph of a prepared PlainTD copy, which it takes over (as
    :func:`space_to_depth_td`), or None: no AVX-512 build of :mod:`tdlib.native` (the only one
    measured faster), a full-resolution level of :data:`NARROW` channels or more, rows wider than
    the native convolution takes or not wider than 16 pixels, or some part not a plain chain."""
    from tdlib.attacks.queries import UpsampledMerge

    if not narrow_conv_available() or type(model) is not PlainTD or model.num_scales < 2:
        return None
    if type(model.upsample) is not nn.Identity:
        return None
    if any(type(model.get_submodule(name)) is not nn.Identity for name in model.stage_names):
        return None
    n = model.num_scales
    _, height, width = (int(d) for d in model.input_shape)
    merge = model.merge_blocks[n - 2]
    if (type(merge) is not UpsampledMerge or not _same_conv(merge.conv_s) or merge.conv_s.bias is not None
            or merge.conv_s.out_channels >= NARROW or width <= 16 or width % 2 or height % 2):
        return None
    side = _narrow_layers(model.side_branches["0"], width)
    stage = _narrow_layers(model.stages[n - 1], width)
    head = _narrow_layers(model.head, width)
    rest = _narrow_layers(merge.rest, width)
    if side is None or stage is None or head is None or rest is None:
        return None
    merged = merge.merged_conv()
    if merged is None:
        return None
    fuse_relu = bool(rest) and type(rest[0]) is nn.ReLU  # ReLU(conv([s, up2(a)])) in one pass
    conv = NarrowConv(merged, relu=fuse_relu, up_channels=merged.in_channels - merge.conv_s.in_channels)
    if width > conv.max_width:
        return None
    graph = NarrowFullResTD(model, nn.Sequential(*side), conv, nn.Sequential(*rest[fuse_relu:]),
                            nn.Sequential(*stage), nn.Sequential(*head))
    model.merge_blocks[n - 2] = nn.Identity()
    model.side_branches["0"] = nn.Identity()
    model.stages[n - 1] = nn.Identity()
    setattr(model, "head", nn.Identity())  # noqa: B010 (a typed attribute of PlainTD)
    return graph
