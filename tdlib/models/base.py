"""The model base class: input validation, normalisation, pyramid, hooks and scale ablation."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from tdlib.errors import ConfigError, InputShapeError, InputValueError
from tdlib.models.layers import Normalize, ResolutionMerge
from tdlib.models.pyramid import Pyramid

#: How far outside [0, 1] a model input may go before it is refused: catches 0-255 pixels,
#: standardised and [-1, 1] images, but lets resampling overshoot (bicubic/Lanczos: <= ~10%) and
#: noisy imputations (grad-cam's ROAD adds N(0, 0.01^2)) through unchanged.
VALUE_MARGIN = 0.1


def check_pixel_values(x: torch.Tensor, name: str = "input", *, margin: float = VALUE_MARGIN) -> None:
    """Refuse NaN/inf or values outside ``[0, 1]`` (± ``margin``, default :data:`VALUE_MARGIN`)
    in ``x``.

    One fused ``aminmax`` pass and one host synchronisation; the detailed counts are computed
    only when the check fails.

    Raises:
        InputValueError: naming the NaN/inf counts or the value range seen.
    """
    if not x.numel():
        return
    lo, hi = torch.stack(torch.aminmax(x.detach())).tolist()  # NaN propagates into both
    if lo >= -margin and hi <= 1.0 + margin:
        return
    xd = x.detach()
    n_nan = int(torch.isnan(xd).sum())
    n_inf = int(torch.isinf(xd).sum())
    if n_nan or n_inf:
        bad_images = int((~torch.isfinite(xd)).flatten(1).any(1).sum()) if xd.ndim > 1 else 1
        raise InputValueError(
            f"{name}: {n_nan} NaN and {n_inf} inf value(s) in {bad_images} of {xd.shape[0]} "
            "image(s); inputs must be finite images in [0, 1] (the model would return NaN logits)"
        )
    tolerated = f" (±{margin} tolerated)" if margin else ""
    raise InputValueError(
        f"{name}: values in [{lo:.4g}, {hi:.4g}], but inputs must be images in [0, 1]{tolerated}: "
        "divide 0-255 images by 255, and do not normalise them (the model subtracts its own mean)"
    )


def check_labels(y: torch.Tensor, num_outputs: int, what: str) -> None:
    """Refuse labels that do not index the model's ``num_outputs`` logits (one pass, no copy).

    Raises:
        InputShapeError: naming the label range seen and the number of outputs.
    """
    if not y.numel():
        return
    lo, hi = (int(v) for v in torch.stack(torch.aminmax(y)).tolist())
    if lo < 0 or hi >= num_outputs:
        fix = (f"build the model with num_classes={hi + 1} or fix the labels" if lo >= 0 else
               "labels are class indices from 0 (not -1 or other markers): fix or drop them")
        raise InputShapeError(
            f"{what}: labels range over [{lo}, {hi}] but the model has {num_outputs} outputs "
            f"(classes 0-{num_outputs - 1}); {fix}"
        )


@contextmanager
def trusted_inputs(model: nn.Module) -> Iterator[nn.Module]:
    """Skip the per-forward value checks (NaN/inf, [0, 1] range) of every :class:`TDLibModel`
    inside ``model`` (a model, or a wrapper such as DDP) within the block; restored afterwards.

    Shape, dtype and device are still checked (they cost nothing). Meant for hot loops whose
    inputs are valid by construction: the training engine (images decoded from uint8) and attack
    loops over clipped candidates (check the clean batch once, e.g. with :func:`check_pixel_values`).
    """
    mods = [m for m in model.modules() if isinstance(m, TDLibModel)]
    before = [m.check_values for m in mods]
    for m in mods:
        m.check_values = False
    try:
        yield model
    finally:
        for m, b in zip(mods, before):
            m.check_values = b


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
    #: run the value checks (NaN/inf, [0, 1] range) on every public forward; see
    #: :func:`trusted_inputs` for hot loops over inputs that are valid by construction
    check_values: bool = True

    def check_input(self, x: object, what: str = "input") -> torch.Tensor:
        """Validate one model input and return it, cast to the model's floating dtype.

        Accepted: a floating-point tensor ``(N, *input_shape)`` on the model's device with values
        in [0, 1]. ``N = 0`` is allowed (the model then returns an empty ``(0, num_classes)``
        output, in train and eval mode alike).

        * dtype: any floating dtype is accepted and cast to the model's own (``float32``, or what
          ``model.double()`` / ``.half()`` made it), so ``torch.from_numpy`` of a float64 array
          works; the cast is differentiable. Integer/bool tensors (e.g. uint8 0-255 images) are
          refused: convert them with ``x.float() / 255``.
        * values: NaN/inf are refused; so are values outside [0, 1] by more than
          :data:`VALUE_MARGIN` (0-255 pixels, standardised or [-1, 1] images). Nothing is clamped:
          values within the margin (resampling overshoot, noise imputation) pass unchanged.
          The value check is one ``aminmax`` pass plus a fixed ~30 µs: measured on one CPU
          thread, 0.15% of an inference forward of LeNetFC-BU at batch 1024 (0.26 of 175 ms),
          1.4% at batch 128, ~6% at batch 1; on a GPU it is also one host synchronisation per
          forward. Code whose inputs are valid by construction (the training engine, attack
          loops over clipped candidates) skips it with :func:`trusted_inputs` (or
          ``model.check_values = False``).

        Raises:
            InputShapeError: not a tensor, wrong rank/shape, non-floating dtype, wrong device.
            InputValueError: NaN/inf or values outside [0, 1] (subclass of InputShapeError).
        """
        name = f"{self.backbone}_{self.variant} {what}"
        expected = "(N, " + ", ".join(str(d) for d in self.input_shape) + ")"
        if not isinstance(x, torch.Tensor):
            hint = "; convert it with torch.from_numpy(x)" if type(x).__module__ == "numpy" else ""
            raise InputShapeError(f"{name}: expected a tensor {expected}; got {type(x).__name__}{hint}")
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            hint = " (add the batch dimension: x[None])" if tuple(x.shape) == self.input_shape else ""
            raise InputShapeError(f"{name}: expected {expected}; got {tuple(x.shape)}{hint}")
        if not x.is_floating_point():
            raise InputShapeError(
                f"{name}: expected a floating-point tensor with values in [0, 1]; got {x.dtype}"
                + ("; convert 0-255 images with x.float() / 255" if x.dtype == torch.uint8 else "")
            )
        ref = self.normalize.mean
        if x.device != ref.device:
            raise InputShapeError(
                f"{name} is on {x.device} but the model is on {ref.device}; move the input with "
                f"x.to({str(ref.device)!r})"
            )
        if x.dtype != ref.dtype:
            x = x.to(ref.dtype)
        if self.check_values and x.numel():
            check_pixel_values(x, name)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of a batch of [0, 1] images ``(N, *input_shape)``
        (validated by :meth:`check_input`)."""
        x = self.check_input(x)
        return self._forward_checked([x] * self.num_scales)

    def forward_multi(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Feed pyramid level ``i`` from its own full-resolution image ``xs[i]``.

        ``xs[0]`` feeds the full-resolution side branch, ``xs[-1]`` the lowest-resolution
        stem; each is normalised and downscaled to its own level. ``forward(x)`` is
        ``forward_multi([x] * num_scales)``, so the two agree exactly.
        """
        if len(xs) != self.num_scales:
            raise InputShapeError(f"expected {self.num_scales} inputs (one per scale); got {len(xs)}")
        checked = [self.check_input(x, f"input {i}") for i, x in enumerate(xs)]
        if len({int(x.shape[0]) for x in checked}) != 1:
            raise InputShapeError(
                f"all inputs must have the same batch size; got {[int(x.shape[0]) for x in checked]}"
            )
        return self._forward_checked(checked)

    def _forward_checked(self, xs: list[torch.Tensor]) -> torch.Tensor:
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
