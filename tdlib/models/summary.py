"""Model size and cost: trainable parameters, MACs and a layer-by-layer resolution table."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tdlib.models.base import TDLibModel
from tdlib.models.layers import MaxPool2dSame, ResolutionMerge, Upsample2x
from tdlib.models.registry import available_variants, build_model
from tdlib.models.spec import BACKBONES

_MAC_OPS = ("convolution", "mm", "addmm", "bmm", "baddbmm")  # bmm: 1x1 convs (layers._pointwise_conv)


def count_params(model: nn.Module) -> int:
    """Trainable parameters (conv/dense weights and biases, BN gamma/beta)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: TDLibModel) -> int:
    """Conv + dense multiply-accumulates for one image.

    The model is copied to the ``meta`` device (shapes only, no arithmetic), the pyramid
    levels are made outside the counter and only ``aten.convolution``/``mm``/``addmm``
    FLOPs are kept (FLOPs / 2 = MACs), so normalisation, the pyramid, BN, pooling and
    up-sampling are excluded, matching the reference-notes table.
    """
    meta = copy.deepcopy(model).to("meta").eval()
    x = torch.zeros((1, *model.input_shape), device="meta")
    with torch.no_grad():
        levels = meta.pyramid(meta.normalize(x))
        counter = FlopCounterMode(display=False)
        with counter:
            meta.forward_levels(levels)
    flops = sum(n for op, n in counter.get_flop_counts()["Global"].items() if _op_name(op) in _MAC_OPS)
    return int(flops // 2)


def _op_name(op: Any) -> str:
    return str(getattr(op, "__name__", op)).split(".")[0]


def model_summary(model: TDLibModel) -> dict[str, Any]:
    """Return params, macs, input_shape, final_feature_map (of default_cam_stage), num_scales."""
    rows = {r["name"]: r for r in layer_table(model)}
    cam = rows[model.default_cam_stage]
    return {
        "params": count_params(model),
        "macs": count_macs(model),
        "input_shape": tuple(model.input_shape),
        "final_feature_map": (cam["channels"], cam["height"], cam["width"]),
        "num_scales": model.num_scales,
    }


def summarize_all(num_classes: int = 10) -> list[dict[str, Any]]:
    """:func:`model_summary` of every backbone x available variant (default shapes)."""
    out = []
    for backbone in BACKBONES:
        for variant in available_variants(backbone):
            model = build_model(backbone, variant, num_classes)
            out.append({"backbone": backbone, "variant": variant, **model_summary(model)})
    return out


def _kind(module: nn.Module, name: str, stage_names: tuple[str, ...]) -> str | None:
    if name in stage_names:
        return "stage"
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, MaxPool2dSame):
        return "pool"
    if isinstance(module, Upsample2x):
        return "upsample"
    if isinstance(module, ResolutionMerge):
        return "merge"
    return None


def layer_table(model: TDLibModel) -> list[dict[str, Any]]:
    """Rows ``(name, kind, channels, height, width)`` in forward order.

    Kinds: ``pyramid`` (one row per input level), ``conv``, ``pool``, ``upsample``,
    ``merge`` (output of merge conv), ``stage`` (the ``act_*`` hook points) and ``linear``
    (height = width = 1). Runs one shape-only forward pass on the ``meta`` device.
    """
    meta = copy.deepcopy(model).to("meta").eval()
    rows: list[dict[str, Any]] = []
    x = torch.zeros((1, *model.input_shape), device="meta")
    levels = meta.pyramid(meta.normalize(x))
    for i, lvl in enumerate(levels):
        c, h, w = lvl.shape[1:]
        rows.append({"name": f"pyramid.{i}", "kind": "pyramid", "channels": c, "height": h, "width": w})

    def hook_for(name: str, kind: str) -> Any:
        def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
            shape = (*out.shape[1:], 1, 1)
            rows.append(
                {
                    "name": name,
                    "kind": kind,
                    "channels": int(shape[0]),
                    "height": int(shape[1]),
                    "width": int(shape[2]),
                }
            )

        return hook

    handles = []
    for name, module in meta.named_modules():
        kind = _kind(module, name, model.stage_names)
        if kind is not None:
            handles.append(module.register_forward_hook(hook_for(name, kind)))
    try:
        with torch.no_grad():
            meta.forward_levels(levels)
    finally:
        for h in handles:
            h.remove()
    return rows
