"""BU and TD models of the Top-Down Networks paper (LeNetFC, NIN-light, NIN, ResNet32, ResNet18).

Public API::

    from tdlib.models import build_model
    model = build_model("nin_light", "td")      # logits for [0, 1] images (N, 1, 28, 28)
"""

from __future__ import annotations

from tdlib.models.base import TDLibModel
from tdlib.models.layers import MERGES
from tdlib.models.pyramid import PYRAMIDS
from tdlib.models.registry import BACKBONES, VARIANTS, available_variants, build_model
from tdlib.models.summary import layer_table, model_summary, summarize_all

__all__ = [
    "BACKBONES",
    "MERGES",
    "PYRAMIDS",
    "VARIANTS",
    "TDLibModel",
    "available_variants",
    "build_model",
    "layer_table",
    "model_summary",
    "summarize_all",
]
