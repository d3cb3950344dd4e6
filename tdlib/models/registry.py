"""``build_model``: backbone name x variant -> a ready (initialised) :class:`TDLibModel`."""

from __future__ import annotations

import torch

from tdlib.errors import ConfigError, check_name
from tdlib.models.base import TDLibModel
from tdlib.models.layers import MERGES
from tdlib.models.plain import PlainBU, PlainTD
from tdlib.models.pyramid import PYRAMIDS
from tdlib.models.resnet import ResNetBU, ResNetTD
from tdlib.models.spec import BACKBONES, VARIANTS, get_spec

__all__ = ["BACKBONES", "VARIANTS", "available_variants", "build_model"]


def available_variants(backbone: str) -> tuple[str, ...]:
    """Variants the reference defines for ``backbone`` (ResNet18-half: ``bu`` and ``td``)."""
    return get_spec(backbone).variants


def build_model(
    backbone: str,
    variant: str,
    num_classes: int = 10,
    *,
    in_channels: int | None = None,
    input_size: int | None = None,
    pyramid: str = "gaussian",
    merge: str = "add_concat",
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> TDLibModel:
    """Build a BU or TD model with the reference's architecture and initialisation.

    Args:
        backbone: one of :data:`BACKBONES`.
        variant: one of :func:`available_variants` of the backbone.
        num_classes: number of logits.
        in_channels: image channels (default: 1 for lenetfc/nin_light, 3 otherwise).
        input_size: image height = width (default 28 / 32 / 128). Must be divisible by
            ``2 ** (num_scales - 1)`` of the backbone's TD (checked for BU too, so BU and TD
            accept the same images).
        pyramid: TD down-scaling method: gaussian (TF-exact), noblur, pool or antialias.
        merge: TD resolution merge: add, concat or add_concat (the released TD).
        mean: per-pixel (C, H, W) or per-channel (C,) mean subtracted by the first layer.
        std: per-channel (C,) or (C, 1, 1) std the first layer divides by.

    Example:
        >>> import torch
        >>> from tdlib.models import build_model
        >>> td = build_model("nin_light", "td")
        >>> td(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2, 10])
        >>> td.num_scales, td.default_cam_stage
        (3, 'act_3')
        >>> build_model("resnet18_half", "td_uni")
        Traceback (most recent call last):
        ...
        tdlib.errors.UnknownNameError: unknown variant of resnet18_half 'td_uni'; accepted: bu, td

    Raises:
        UnknownNameError: unknown backbone, variant (including one the backbone does not
            define), pyramid or merge.
        ConfigError: invalid sizes, class count or normalisation statistics.
    """
    spec = get_spec(backbone)
    check_name(f"variant of {backbone}", variant, spec.variants)
    check_name("pyramid", pyramid, PYRAMIDS)
    check_name("merge", merge, MERGES)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer; got {num_classes!r}")
    c = spec.in_channels if in_channels is None else in_channels
    size = spec.input_size if input_size is None else input_size
    if not isinstance(c, int) or c < 1:
        raise ConfigError(f"in_channels must be a positive integer; got {c!r}")
    f = 2 ** (spec.num_scales - 1)
    if not isinstance(size, int) or size < f or size % f:
        raise ConfigError(f"input_size of {backbone} must be a positive multiple of {f}; got {size!r}")
    shape = (c, size, size)
    model: TDLibModel
    if variant == "bu":
        cls_bu = PlainBU if spec.family == "plain" else ResNetBU
        model = cls_bu(spec, num_classes=num_classes, input_shape=shape, pyramid=pyramid)
    else:
        cls_td = PlainTD if spec.family == "plain" else ResNetTD
        model = cls_td(spec, variant, num_classes=num_classes, input_shape=shape, pyramid=pyramid, merge=merge)
    model.normalize.set_stats(mean, std)
    return model
