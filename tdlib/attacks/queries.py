"""Cheap forward passes for the attack scans: a private inference copy of the model.

A scan asks the model about hundreds of thousands of candidates and only needs the arg-max. The
copy made here folds every eval-mode BatchNorm into the convolution before it (inside plain
``nn.Sequential`` containers, whose forward runs the children in order), splits the merge conv of
every concatenating TD resolution merge into two convolutions (no concatenated copy; see
:func:`split_merges`) and runs convolutional models in ``channels_last``; forwards run in
``torch.inference_mode``. On a LeNetFC-TD folding cut the per-image cost of a batched forward by
about 1.4x and splitting by another 1.3x (one CPU thread). A PlainTD's narrow full-resolution level
then runs through :mod:`tdlib.native`'s compiled convolution where an AVX-512 build exists
(:func:`~tdlib.attacks.fastgraph.narrow_full_res_td`: 0.126 vs 0.155 ms per image for a
LeNetFC-TD at 52 images per forward, one thread), else on the space-to-depth image. The copy is
checked on a probe batch and dropped for the original model if its logits differ by more than
float rounding.
"""

from __future__ import annotations

import copy
import itertools
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from tdlib.attacks.fastgraph import S2DConv, narrow_full_res_td, space_to_depth_td
from tdlib.models.layers import Conv2dSame, ResolutionMerge, Upsample2x

__all__ = ["QueryModel", "UpsampledMerge", "bucket", "fold_batchnorm", "fuse_upsampling", "leaves", "polyphase_weight",
           "query_model", "split_merges"]

_RTOL = 1e-4  # logits of the folded copy must match the model to float rounding


def fold_batchnorm(model: nn.Module) -> int:
    """Fold ``BatchNorm2d`` into the preceding ``Conv2d`` in place; returns the number folded.

    Only consecutive (Conv2d, BatchNorm2d) children of modules that use ``nn.Sequential.forward``
    unchanged are folded, and only eval-mode BatchNorms with running statistics.
    """
    folded = 0
    for mod in list(model.modules()):
        if not isinstance(mod, nn.Sequential) or type(mod).forward is not nn.Sequential.forward:
            continue
        names = list(mod._modules)
        for a, b in itertools.pairwise(names):
            conv, bn = mod._modules[a], mod._modules[b]
            if (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and not bn.training
                    and bn.track_running_stats and bn.running_mean is not None
                    and conv.out_channels == bn.num_features):
                mod._modules[a] = fuse_conv_bn_eval(conv, bn)
                mod._modules[b] = nn.Identity()
                folded += 1
    return folded


def leaves(mod: nn.Module) -> list[nn.Module] | None:
    """The modules ``mod`` runs one after the other, through plain ``nn.Sequential`` containers
    (None where some container has a forward of its own)."""
    if not isinstance(mod, nn.Sequential):
        return [mod]
    if type(mod).forward is not nn.Sequential.forward:
        return None
    out: list[nn.Module] = []
    for child in mod:
        sub = leaves(child)
        if sub is None:
            return None
        out += sub
    return out


class _SplitMerge(nn.Module):
    """A concatenating merge without the concatenation: ``post(cat([u + s, s]))`` (``add_concat``)
    or ``post(cat([u, s]))`` (``concat``) whose first layer is a convolution ``W = [W1 | W2]``
    equals ``rest(conv(u, W1) + conv(s, W1 + W2))`` (resp. ``W2``)."""

    def __init__(self, conv_u: nn.Conv2d, conv_s: nn.Conv2d, rest: list[nn.Module]) -> None:
        super().__init__()
        self.conv_u, self.conv_s, self.rest = conv_u, conv_s, nn.Sequential(*rest)

    def forward(self, u: Tensor, s: Tensor) -> Tensor:
        out: Tensor = self.conv_s(s)
        out = out.add_(self.conv_u(u))  # in place: no third full-resolution tensor
        res: Tensor = self.rest(out)
        return res


def polyphase_weight(w: Tensor) -> tuple[Tensor, int]:
    """The weights of ``conv(up2(a), w)`` (nearest x2 upsampling, odd kernel, stride 1, zero
    padding ``k // 2``) as one convolution of ``a`` itself: output channel ``4 c + 2 di + dj`` is
    output phase ``(di, dj)`` (row ``2 i + di``, column ``2 j + dj``) of channel ``c``, the order of
    ``pixel_unshuffle``. High-resolution tap ``o`` of phase ``d`` reads low-resolution offset
    ``floor((d + o) / 2)``, so a k x k kernel becomes a (2R + 1)^2 one, R = ceil((k // 2) / 2),
    padded by R; the zero padding of the upsampled image is the zero padding of ``a``. Returns
    (weights, R)."""
    co, ci, k, _ = w.shape
    r = k // 2
    big = (r + 1) // 2
    out = torch.zeros(co, 2, 2, ci, 2 * big + 1, 2 * big + 1, dtype=w.dtype, device=w.device)
    for di, dj, a, b in itertools.product(range(2), range(2), range(k), range(k)):
        out[:, di, dj, :, (di + a - r) // 2 + big, (dj + b - r) // 2 + big] += w[:, :, a, b]
    return out.reshape(4 * co, ci, 2 * big + 1, 2 * big + 1), big


class UpsampledMerge(nn.Module):
    """A split merge fed the main stream *before* its nearest x2 upsampling.

    ``conv_u(up2(a))`` runs as one polyphase convolution of ``a`` at low resolution (four times the
    output channels, a quarter of the positions; :func:`polyphase_weight`), and its four phases
    are added into ``conv_s(s)`` through strided views: neither the upsampled stream nor a
    shuffled copy is ever made. On a LeNetFC-TD this cut the 28 x 28 merge from 48 to 21 ms per
    512 images (one CPU thread).
    """

    weight_u: Tensor
    bias_u: Tensor | None

    def __init__(self, merge: _SplitMerge) -> None:
        super().__init__()
        conv = merge.conv_u
        weight, self.pad = polyphase_weight(conv.weight.detach())
        self.weight = nn.Parameter(weight.contiguous(), requires_grad=False)
        bias = conv.bias.detach().repeat_interleave(4) if conv.bias is not None else None
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
        self.conv_s, self.rest = merge.conv_s, merge.rest
        # conv_u itself, for graphs that upsample inside their own kernel (merged_conv)
        self.register_buffer("weight_u", conv.weight.detach().clone(), persistent=False)
        self.register_buffer("bias_u", None if conv.bias is None else conv.bias.detach().clone(), persistent=False)

    def forward(self, a: Tensor, s: Tensor) -> Tensor:
        out: Tensor = self.conv_s(s)
        n, c, h, w = out.shape
        p = F.conv2d(a, self.weight, self.bias, padding=self.pad)  # (n, 4c, h/2, w/2)
        phases = p.view(n, c, 2, 2, h // 2, w // 2).permute(0, 1, 4, 2, 5, 3)
        out.view(n, c, h // 2, 2, w // 2, 2).add_(phases)
        res: Tensor = self.rest(out)
        return res

    def merged_conv(self) -> nn.Conv2d | None:
        """One convolution of ``cat([s, up2(a)])`` computing ``conv_s(s) + conv_u(up2(a))``, or None
        where the two kernels differ in size or ``conv_s`` has a bias (then they do not stack). Both
        are 'same' convolutions for the caller to check (``conv_u`` always is)."""
        cs, wu = cast(nn.Conv2d, self.conv_s), self.weight_u
        if cs.bias is not None or tuple(cs.weight.shape[2:]) != tuple(wu.shape[2:]):
            return None
        k = int(wu.shape[2])
        conv = nn.Conv2d(cs.in_channels + int(wu.shape[1]), cs.out_channels, k, padding=k // 2,
                         bias=self.bias_u is not None)
        conv.weight.data.copy_(torch.cat([cs.weight.detach(), wu], dim=1))
        if self.bias_u is not None and conv.bias is not None:
            conv.bias.data.copy_(self.bias_u)
        return conv.requires_grad_(False)

    def s2d_poly(self) -> S2DConv:
        """The polyphase convolution alone, for a space-to-depth graph (its output is the
        ``pixel_unshuffle`` of ``conv_u(up2(a))``)."""
        return S2DConv(self.weight.detach(), None if self.bias is None else self.bias.detach(), self.pad)


def _fusable_upsampling(merge: nn.Module) -> bool:
    conv = getattr(merge, "conv_u", None)
    return (type(merge) is _SplitMerge and isinstance(conv, nn.Conv2d) and conv.kernel_size[0] == conv.kernel_size[1]
            and conv.kernel_size[0] % 2 == 1 and conv.stride == (1, 1) and conv.dilation == (1, 1)
            and conv.padding == (conv.kernel_size[0] // 2,) * 2 and conv.padding_mode == "zeros"
            and conv.groups == 1 and type(conv) in (nn.Conv2d, Conv2dSame))


def fuse_upsampling(model: nn.Module) -> int:
    """In a :class:`~tdlib.models.plain.PlainTD` whose every merge was split
    (:func:`split_merges`), fold the shared nearest x2 upsampling into the merges
    (:class:`UpsampledMerge`) and drop it; returns the number of merges replaced (0: unchanged).

    Only an exact ``PlainTD`` qualifies: its ``forward_levels`` uses ``upsample`` for nothing but
    the merges' main-stream input.
    """
    from tdlib.models.plain import PlainTD

    merges = getattr(model, "merge_blocks", None)
    if (type(model) is not PlainTD or not isinstance(model.upsample, Upsample2x)
            or not isinstance(merges, nn.ModuleList) or not all(_fusable_upsampling(m) for m in merges)):
        return 0
    for i, m in enumerate(list(merges)):
        merges[i] = UpsampledMerge(cast(_SplitMerge, m))
    setattr(model, "upsample", nn.Identity())  # noqa: B010 (a typed attribute of PlainTD)
    return len(merges)


def _split(merge: ResolutionMerge) -> _SplitMerge | None:
    layers = leaves(merge.post) or []
    conv = layers[0] if layers else None
    c = merge.channels
    # exact types: a Conv2d subclass may have a forward of its own
    if (merge.silenced or merge.method == "add" or type(conv) not in (nn.Conv2d, Conv2dSame)
            or not isinstance(conv, nn.Conv2d) or conv.groups != 1 or conv.in_channels != 2 * c):
        return None
    w1, w2 = conv.weight.detach()[:, :c], conv.weight.detach()[:, c:]
    conv_u, conv_s = copy.deepcopy(conv), copy.deepcopy(conv)
    conv_u.weight = nn.Parameter(w1.contiguous(), requires_grad=False)
    conv_s.weight = nn.Parameter((w1 + w2 if merge.method == "add_concat" else w2).contiguous(),
                                 requires_grad=False)
    conv_s.bias = None
    conv_u.in_channels = conv_s.in_channels = c
    return _SplitMerge(conv_u, conv_s, layers[1:])


def split_merges(model: nn.Module) -> int:
    """Replace every concatenating :class:`ResolutionMerge` whose merge layers start with a
    convolution by its concatenation-free equivalent (in place); returns the number replaced.

    The concatenated tensor is the largest copy of a TD forward (13% of a LeNetFC-TD inference on
    one CPU thread). Silenced merges and merges whose layers start otherwise (the ResNets'
    pre-activation merges) stay as they are.
    """
    done = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ResolutionMerge):
                new = _split(child)
                if new is not None:
                    setattr(parent, name, new)  # also an nn.ModuleList item ("0", "1", ...)
                    done += 1
    return done


def bucket(n: int) -> int:
    """The padded batch size of a forward of ``n`` rows: ``n`` rounded up to a multiple of
    ``max(4, 2 ** (floor(log2 n) - 3))`` (eight sizes per octave)."""
    step = max(4, 1 << max(0, n.bit_length() - 4))
    return -(-n // step) * step


class QueryModel(nn.Module):
    """Arg-max classifier over many candidates: the (prepared) model in inference mode, in chunks."""

    def __init__(self, model: nn.Module, *, channels_last: bool = False, batch: int = 512) -> None:
        super().__init__()
        self.model = model
        self.channels_last = channels_last
        self.batch = batch
        self.queries = 0  # candidates classified so far

    def forward(self, x: Tensor) -> Tensor:  # logits
        """Logits of ``x`` (no gradients)."""
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out: Tensor = self.model(x)
        return out

    def predict(self, x: Tensor) -> Tensor:
        """Arg-max class of every row of ``x`` (N, C, H, W).

        Each forward's batch is padded (with copies of its last row) to :func:`bucket` size:
        oneDNN builds a kernel for every new input shape (3.3 ms more than a repeated size for a
        LeNetFC-TD forward of 150-230 images on one thread here, 12%), and the scans' rounds come
        in every size (108 distinct ones in a Pointwise run on 90 images), more than its primitive
        cache of 1024 kernels holds at 15 convolutions a forward. Buckets keep 40 sizes up to
        512, for 4% padded rows on average (at most 1/8 from 32 rows on).
        """
        self.queries += int(x.shape[0])
        if x.shape[0] == 0:
            return torch.zeros(0, dtype=torch.long, device=x.device)
        with torch.inference_mode():
            return torch.cat([self._argmax(x[i:i + self.batch]) for i in range(0, x.shape[0], self.batch)])

    def _argmax(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        pad = bucket(n) - n
        if pad:
            x = torch.cat([x, x[-1:].expand(pad, *x.shape[1:])])
        out: Tensor = self(x).argmax(dim=1)
        return out[:n]

    def misclassified(self, x: Tensor, y: Tensor) -> Tensor:
        """(N,) bool: ``x[i]`` is not classified as ``y[i]``."""
        return self.predict(x) != y


def query_model(model: nn.Module, probe: Tensor, *, batch: int = 512) -> QueryModel:
    """The fastest exact stand-in for ``model`` (eval mode) that this module knows.

    Args:
        model: classifier in eval mode.
        probe: a few inputs (N, C, H, W) on the model's device to check the copy against.
        batch: forward chunk size.
    """
    has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    try:
        fast = copy.deepcopy(model)
    except Exception:  # a module that cannot be copied: use it as it is
        return QueryModel(model, batch=batch)
    with torch.no_grad():
        fold_batchnorm(fast)
        split_merges(fast)
        fuse_upsampling(fast)
        fast = narrow_full_res_td(fast) or space_to_depth_td(fast) or fast
        if has_conv:
            fast = fast.to(memory_format=torch.channels_last)
        cand = QueryModel(fast, channels_last=has_conv, batch=batch)
        if probe.shape[0]:
            probe = probe[:8]
            ref = model(probe)
            got = cand(probe)
            scale = float(ref.abs().amax()) + 1e-6
            if got.shape != ref.shape or float((got - ref).abs().amax()) > _RTOL * scale + 1e-6:
                return QueryModel(model, batch=batch)
    return cand
