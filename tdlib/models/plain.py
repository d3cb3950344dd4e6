"""LeNetFC / NIN-light / NIN: bottom-up and top-down builders for Conv-BN-ReLU networks.

Both builders read the same :class:`~tdlib.models.spec.BackboneSpec`; the TD one gets its
stages from :func:`~tdlib.models.spec.td_stages` (the single reversal rule) and adds, at each
former down-sampling:

* a 1x1 CBR adapter before up-sampling when the stream width differs from the merge width
  (the merge width is the width of the next stage's first unit);
* nearest x2 up-sampling;
* a side branch on the pyramid level: a copy of the next stage's image-facing unit
  (its kernel, merge width) as Conv-BN-ReLU;
* the resolution merge followed by the merge conv 3x3-BN-ReLU (+ Dropout where the BU has
  dropout after its pools, i.e. NIN).

Classifier (BU and TD): 1x1 CBR to ``num_classes`` (BN + ReLU on the class maps, as in the
reference) -> global average pooling. No softmax.
"""

from __future__ import annotations

import torch
from torch import nn

from tdlib.models.base import TDLibModel
from tdlib.models.layers import (
    CBR,
    Dropout,
    MaxPool2dSame,
    ResolutionMerge,
    Upsample2x,
    init_glorot,
    merged_channels,
)
from tdlib.models.spec import BackboneSpec, Stage, td_stages


def _stage_layers(stage: Stage, c_in: int, spec: BackboneSpec) -> tuple[nn.Sequential, int]:
    layers = []
    for unit in stage.units:
        layers.append(CBR(c_in, unit.width, unit.kernel, bn_momentum=spec.bn_momentum, bn_eps=spec.bn_eps))
        c_in = unit.width
    return nn.Sequential(*layers), c_in


def _dropout(p: float) -> list[nn.Module]:
    return [Dropout(p)] if p > 0 else []


class PlainBU(TDLibModel):
    """Bottom-up LeNetFC / NIN: stages separated by stride-2 max-pools (+ dropout)."""

    def __init__(
        self,
        spec: BackboneSpec,
        *,
        num_classes: int,
        input_shape: tuple[int, int, int],
        pyramid: str,
    ) -> None:
        super().__init__(
            backbone=spec.name,
            variant="bu",
            num_classes=num_classes,
            input_shape=input_shape,
            num_scales=1,
            stage_names=spec.stage_names,
            default_cam_stage=spec.default_cam_stage,
            pyramid=pyramid,
        )
        c = input_shape[0]
        stages, downs = [], []
        for i, stage in enumerate(spec.stages):
            if i:
                downs.append(nn.Sequential(MaxPool2dSame(spec.pool_kernel, 2), *_dropout(spec.dropout)))
            layers, c = _stage_layers(stage, c, spec)
            stages.append(layers)
        self.stages = nn.ModuleList(stages)
        self.downs = nn.ModuleList(downs)
        self.head = CBR(c, num_classes, 1, bn_momentum=spec.bn_momentum, bn_eps=spec.bn_eps)
        init_glorot(self)

    def forward_levels(self, levels: list[torch.Tensor]) -> torch.Tensor:
        x = levels[0]
        for i, stage in enumerate(self.stages):
            if i:
                x = self.downs[i - 1](x)
            x = self.stage(self.stage_names[i], stage(x))
        x = self.stage(self.stage_names[-1], self.head(x))
        return x.mean(dim=(2, 3))


class PlainTD(TDLibModel):
    """Top-down LeNetFC / NIN (variants ``td``, ``td_uni``, ``td_rev``).

    The lowest pyramid level enters the first TD stage; pyramid level ``k`` feeds the side
    branch ``side_branches[str(k)]`` of the merge that brings the stream to level ``k``.
    """

    def __init__(
        self,
        spec: BackboneSpec,
        variant: str,
        *,
        num_classes: int,
        input_shape: tuple[int, int, int],
        pyramid: str,
        merge: str,
    ) -> None:
        stages_td = td_stages(spec, variant)
        super().__init__(
            backbone=spec.name,
            variant=variant,
            num_classes=num_classes,
            input_shape=input_shape,
            num_scales=len(stages_td),
            stage_names=spec.stage_names,
            default_cam_stage=spec.default_cam_stage,
            pyramid=pyramid,
        )
        bn = {"bn_momentum": spec.bn_momentum, "bn_eps": spec.bn_eps}
        c_img = input_shape[0]
        n = len(stages_td)
        c = c_img
        stages: list[nn.Module] = []
        adapters: list[nn.Module] = []
        sides: dict[str, nn.Module] = {}
        merges: list[nn.Module] = []
        for p, stage in enumerate(stages_td):
            if p:
                w = stage.in_width
                scale = n - 1 - p
                adapters.append(CBR(c, w, 1, **bn) if c != w else nn.Identity())
                sides[str(scale)] = CBR(c_img, w, stage.units[0].kernel, **bn)
                post = nn.Sequential(CBR(merged_channels(merge, w), w, 3, **bn), *_dropout(spec.dropout))
                merges.append(ResolutionMerge(merge, w, post, scale=scale))
                c = w
            layers, c = _stage_layers(stage, c, spec)
            stages.append(layers)
        self.stages = nn.ModuleList(stages)
        self.adapters = nn.ModuleList(adapters)
        self.upsample = Upsample2x()
        self.side_branches = nn.ModuleDict(sides)
        self.merge_blocks = nn.ModuleList(merges)
        self.head = CBR(c, num_classes, 1, **bn)
        init_glorot(self)

    def forward_levels(self, levels: list[torch.Tensor]) -> torch.Tensor:
        n = len(levels)
        x = levels[-1]
        for p, stage in enumerate(self.stages):
            if p:
                scale = n - 1 - p
                u = self.upsample(self.adapters[p - 1](x))
                x = self.merge_blocks[p - 1](u, self.side_branches[str(scale)](levels[scale]))
            x = self.stage(self.stage_names[p], stage(x))
        x = self.stage(self.stage_names[-1], self.head(x))
        return x.mean(dim=(2, 3))
