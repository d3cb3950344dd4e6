"""Pre-activation ResNets (ResNet32 for CIFAR10, half-width ResNet18 for Imagenette), BU and TD.

BU (BIGBALLON/cifar-10-cnn style): stem Conv3x3 (width of the first stage) [-> 3x3/s2
max-pool for ResNet18] -> stages of basic blocks ``o1 = ReLU(BN(x)); y = Conv3x3(s) -> BN ->
ReLU -> Conv3x3; out = y + shortcut`` where the shortcut is ``x`` or, when the stride or width
changes, ``Conv1x1(s)(o1)`` -> BN-ReLU -> GAP -> Dense.

TD (same reversal rule as the plain CNNs, :func:`~tdlib.models.spec.td_stages`): the stem conv
reads the lowest pyramid level; ResNet18's stem max-pool becomes a plain resolution merge
(up-sample, bare 3x3 side conv, merge, BN-ReLU-Conv3x3); every other BU stride-2 block
becomes an *up-block* whose pre-activation ``o1`` is up-sampled before ``conv1`` and whose
shortcut is ``Up(Conv1x1(o1))`` (width change) or ``Up(x)`` (TD_uni). The up-block ends with
the merge: ``proj = shortcut + y``, merged with a bare Conv3x3 side branch on the pyramid
level, then BN -> ReLU -> Conv3x3 back to the stage width.

Hook points ``act_k`` (k <= number of stages) are the pre-activation ``o1`` of the first block
of stage ``k`` (as in the reference's Imagenette Grad-CAM); the last one is the final BN-ReLU.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from tdlib.models.base import TDLibModel
from tdlib.models.layers import (
    Conv2dSame,
    MaxPool2dSame,
    ResolutionMerge,
    Upsample2x,
    init_he,
    merged_channels,
)
from tdlib.models.spec import BackboneSpec, td_stages


def _bn(c: int, spec: BackboneSpec) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=spec.bn_eps, momentum=spec.bn_momentum)


def _merge_post(method: str, c: int, spec: BackboneSpec) -> nn.Sequential:
    """Pre-activation merge conv: BN -> ReLU -> Conv3x3 back to ``c`` channels."""
    cm = merged_channels(method, c)
    return nn.Sequential(_bn(cm, spec), nn.ReLU(), Conv2dSame(cm, c, 3))


class PreActBlock(nn.Module):
    """Pre-activation basic block (stride 1 or 2)."""

    def __init__(self, c_in: int, c_out: int, *, stride: int, spec: BackboneSpec) -> None:
        super().__init__()
        self.bn1 = _bn(c_in, spec)
        self.conv1 = Conv2dSame(c_in, c_out, 3, stride)
        self.bn2 = _bn(c_out, spec)
        self.conv2 = Conv2dSame(c_out, c_out, 3)
        proj = stride != 1 or c_in != c_out
        self.shortcut = Conv2dSame(c_in, c_out, 1, stride) if proj else None

    def forward(self, x: torch.Tensor, tap: nn.Module | None = None) -> torch.Tensor:
        o1 = F.relu(self.bn1(x))
        if tap is not None:
            o1 = tap(o1)
        y = self.conv2(F.relu(self.bn2(self.conv1(o1))))
        sc = x if self.shortcut is None else self.shortcut(o1)
        return y + sc


class UpMergeBlock(nn.Module):
    """TD block that doubles the resolution and merges a side branch at its end."""

    def __init__(self, c_in: int, c_out: int, merge: ResolutionMerge, *, spec: BackboneSpec) -> None:
        super().__init__()
        self.bn1 = _bn(c_in, spec)
        self.upsample = Upsample2x()
        self.conv1 = Conv2dSame(c_in, c_out, 3)
        self.bn2 = _bn(c_out, spec)
        self.conv2 = Conv2dSame(c_out, c_out, 3)
        self.shortcut = Conv2dSame(c_in, c_out, 1) if c_in != c_out else None
        self.merge = merge

    def forward(self, x: torch.Tensor, side: torch.Tensor, tap: nn.Module | None = None) -> torch.Tensor:
        o1 = F.relu(self.bn1(x))
        if tap is not None:
            o1 = tap(o1)
        y = self.conv2(F.relu(self.bn2(self.conv1(self.upsample(o1)))))
        sc = self.upsample(x if self.shortcut is None else self.shortcut(o1))
        out: torch.Tensor = self.merge(sc + y, side)
        return out


class _ResNetBase(TDLibModel):
    """Shared head: BN -> ReLU -> (last act) -> GAP -> Dense."""

    final_bn: nn.BatchNorm2d
    fc: nn.Linear

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage(self.stage_names[-1], F.relu(self.final_bn(x)))
        out: torch.Tensor = self.fc(x.mean(dim=(2, 3)))
        return out


class ResNetBU(_ResNetBase):
    """Bottom-up pre-activation ResNet."""

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
        c = spec.stages[0].in_width
        self.stem = Conv2dSame(input_shape[0], c, 3)
        self.stem_pool = MaxPool2dSame(spec.pool_kernel, 2) if spec.stem_pool else nn.Identity()
        stages = []
        for i, stage in enumerate(spec.stages):
            blocks = []
            for j, unit in enumerate(stage.units):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(PreActBlock(c, unit.width, stride=stride, spec=spec))
                c = unit.width
            stages.append(nn.ModuleList(blocks))
        self.stages = nn.ModuleList(stages)
        self.final_bn = _bn(c, spec)
        self.fc = nn.Linear(c, num_classes)
        init_he(self)

    def forward_levels(self, levels: list[torch.Tensor]) -> torch.Tensor:
        x = self.stem_pool(self.stem(levels[0]))
        for i, stage in enumerate(self.stages):
            for j, block in enumerate(cast(nn.ModuleList, stage)):
                x = block(x, self.get_submodule(self.stage_names[i]) if j == 0 else None)
        return self._head(x)


class ResNetTD(_ResNetBase):
    """Top-down pre-activation ResNet (variants ``td``, ``td_uni``, ``td_rev``)."""

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
            num_scales=spec.num_scales,
            stage_names=spec.stage_names,
            default_cam_stage=spec.default_cam_stage,
            pyramid=pyramid,
        )
        c_img = input_shape[0]
        n = len(stages_td)
        c = stages_td[0].in_width
        self.stem = Conv2dSame(c_img, c, 3)
        sides: dict[str, nn.Module] = {}
        self.stem_merge: ResolutionMerge | None = None
        if spec.stem_pool:
            # The BU max-pool after the stem becomes a plain merge right after the TD stem.
            sides[str(n - 1)] = Conv2dSame(c_img, c, 3)
            self.stem_merge = ResolutionMerge(merge, c, _merge_post(merge, c, spec), scale=n - 1)
        stages = []
        for p, stage in enumerate(stages_td):
            blocks: list[nn.Module] = []
            for j, unit in enumerate(stage.units):
                if p > 0 and j == 0:
                    scale = n - 1 - p
                    sides[str(scale)] = Conv2dSame(c_img, unit.width, 3)
                    post = _merge_post(merge, unit.width, spec)
                    m = ResolutionMerge(merge, unit.width, post, scale=scale)
                    blocks.append(UpMergeBlock(c, unit.width, m, spec=spec))
                else:
                    blocks.append(PreActBlock(c, unit.width, stride=1, spec=spec))
                c = unit.width
            stages.append(nn.ModuleList(blocks))
        self.upsample = Upsample2x()
        self.side_branches = nn.ModuleDict(sides)
        self.stages = nn.ModuleList(stages)
        self.final_bn = _bn(c, spec)
        self.fc = nn.Linear(c, num_classes)
        init_he(self)

    def forward_levels(self, levels: list[torch.Tensor]) -> torch.Tensor:
        n = len(self.stages)
        x = self.stem(levels[-1])
        if self.stem_merge is not None:
            side = self.side_branches[str(n - 1)](levels[n - 1])
            x = self.stem_merge(self.upsample(x), side)
        for p, stage in enumerate(self.stages):
            tap = self.get_submodule(self.stage_names[p])
            for j, block in enumerate(cast(nn.ModuleList, stage)):
                if isinstance(block, UpMergeBlock):
                    scale = n - 1 - p
                    x = block(x, self.side_branches[str(scale)](levels[scale]), tap)
                else:
                    x = block(x, tap if j == 0 else None)
        return self._head(x)
