"""The model base class: input validation, normalisation, pyramid, hooks and scale ablation."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from tdlib.errors import ConfigError, InputShapeError
from tdlib.models.layers import Normalize, ResolutionMerge
from tdlib.models.pyramid import Pyramid


class TDLibModel(nn.Module):
    """Base of every BU and TD model.

    ``forward`` takes images in [0, 1] of shape ``(N, *input_shape)`` and returns logits
    ``(N, num_classes)`` (no softmax). The first layer is :class:`Normalize`; TD models then
    build their input pyramid from the normalised image inside the graph. Every stage output
    passes through an ``nn.Identity`` child named like the stage (``act_1`` ...), so
    ``model.get_submodule("act_3")`` is a hook point.

    Attributes:
        backbone: backbone name.
        variant: ``bu``, ``td``, ``td_uni`` or ``td_rev``.
        num_classes: number of logits.
        input_shape: (C, H, W).
        num_scales: pyramid levels (1 for BU).
        stage_names: hookable stage outputs in forward order.
        default_cam_stage: the stage Grad-CAM should use by default.
    """

    def __init__(
        self,
        *,
        backbone: str,
        variant: str,
        num_classes: int,
        input_shape: tuple[int, int, int],
        num_scales: int,
        stage_names: tuple[str, ...],
        default_cam_stage: str,
        pyramid: str,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.variant = variant
        self.num_classes = num_classes
        self.input_shape = input_shape
        self.num_scales = num_scales
        self.stage_names = stage_names
        self.default_cam_stage = default_cam_stage
        c, h, w = input_shape
        self.normalize = Normalize(c, h, w)
        self.pyramid = Pyramid(pyramid, h, w, num_scales)
        for name in stage_names:
            self.add_module(name, nn.Identity())

    # -- input handling ---------------------------------------------------------------
    def check_input(self, x: object, what: str = "input") -> torch.Tensor:
        """Return ``x`` if it is a float (N, C, H, W) batch of this model's shape."""
        expected = "(N, " + ", ".join(str(d) for d in self.input_shape) + ")"
        if not isinstance(x, torch.Tensor):
            raise InputShapeError(f"{what}: expected a tensor {expected}; got {type(x).__name__}")
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise InputShapeError(f"{self.backbone}_{self.variant} {what}: expected {expected}; got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InputShapeError(f"{what}: expected a floating-point tensor; got {x.dtype}")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of [0, 1] images of shape ``(N, *input_shape)``."""
        return self.forward_multi([x] * self.num_scales)

    def forward_multi(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Feed pyramid level ``i`` from its own full-resolution image ``xs[i]``.

        ``xs[0]`` feeds the full-resolution side branch, ``xs[-1]`` the lowest-resolution
        stem; each is normalised and downscaled to its own level. ``forward(x)`` is
        ``forward_multi([x] * num_scales)``, so the two agree exactly.
        """
        if len(xs) != self.num_scales:
            raise InputShapeError(f"expected {self.num_scales} inputs (one per scale); got {len(xs)}")
        for i, x in enumerate(xs):
            self.check_input(x, f"input {i}")
        if len({int(x.shape[0]) for x in xs}) != 1:
            raise InputShapeError(f"all inputs must have the same batch size; got {[int(x.shape[0]) for x in xs]}")
        levels = [self.pyramid.level(self.normalize(x), i) for i, x in enumerate(xs)]
        return self.forward_levels(levels)

    @abstractmethod
    def forward_levels(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """Logits from normalised pyramid levels (full resolution first)."""

    def stage(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Pass ``x`` through the hook point ``name``."""
        out: torch.Tensor = self.get_submodule(name)(x)
        return out

    # -- scale-removal ablation -------------------------------------------------------
    def merges(self) -> dict[int, ResolutionMerge]:
        """The resolution merges, keyed by the pyramid level of their side branch."""
        return {m.scale: m for m in self.modules() if isinstance(m, ResolutionMerge)}

    @property
    def silenced(self) -> frozenset[int]:
        """Pyramid levels whose side branch is currently zeroed."""
        return frozenset(s for s, m in self.merges().items() if m.silenced)

    @contextmanager
    def silence(self, scale: int) -> Iterator[TDLibModel]:
        """Zero the side-branch contribution of pyramid level ``scale`` inside the block.

        Raises:
            ConfigError: if no merge has a side branch at ``scale`` (e.g. BU models, or the
                lowest level, which feeds the stem).
        """
        merges = self.merges()
        if scale not in merges:
            raise ConfigError(
                f"{self.backbone}_{self.variant} has no side branch at scale {scale}; "
                f"side-branch scales: {sorted(merges)}"
            )
        merge = merges[scale]
        before = merge.silenced
        merge.silenced = True
        try:
            yield self
        finally:
            merge.silenced = before

    def extra_repr(self) -> str:
        return (
            f"backbone={self.backbone}, variant={self.variant}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, num_scales={self.num_scales}"
        )
