"""Grad-CAM on a named stage of a tdlib model, with hooks that are always released.

The maps come from ``pytorch_grad_cam.GradCAM`` (grad-cam 1.5.7): channel weights
``alpha_k = mean_{ij} dy_c / dA_k[ij]`` and ``cam = sum_k alpha_k A_k`` on the output of
``model.get_submodule(stage)`` (an ``nn.Identity`` per stage in tdlib models). Two normalisations
of ``cam`` are offered; both return (N, H, W) float32 maps in [0, 1] at the input resolution:

``"library"`` (pytorch-grad-cam's default)
    ReLU, then per image ``(cam - min) / (max + 1e-7)``, then ``cv2.resize`` (bilinear) to the input
    size, then the same min-max once more. Every positive bit of evidence is kept, so maps are
    broad. A map with no positive value comes out all zeros.

``"paper"`` (the reference code, a port of eclique/keras-gradcam; reference notes 3.3(a))
    Subtract the spatial mean, L2-normalise, resize bilinearly to the input size, ReLU, divide by
    the max. Subtracting the *mean* (not the min) before the ReLU zeroes every location below
    average evidence, so paper maps are sparser than library maps of the same raw ``cam``; the
    ReLU after resizing also cuts the bilinear ramps at the zero crossing. The L2 step has no
    effect after the final division by the max (kept for fidelity). An all-zero map stays zeros.

Caveats of grad-cam 1.5.7 that this module works around:

* ``BaseCAM.__init__`` calls ``model.eval()`` and never restores the flag: restored here.
* ``BaseCAM.__exit__`` swallows any ``IndexError`` (for example a class index out of range) and
  prints it, so ``with GradCAM(...) as cam: maps = cam(...)`` can leave ``maps`` unbound. We never
  use that ``__exit__``; hooks are released in ``finally`` and errors propagate.
* It calls ``model.zero_grad()`` and back-propagates into the parameters, overwriting their
  ``.grad``: the parameters' gradients are saved and restored.
* Gradients are caught with tensor hooks, so a model whose parameters are all frozen would yield
  no gradient at all; the input (a copy) is then made to require grad.
* The forward output is kept with ``retain_graph=True`` until the next call; it is dropped after
  every batch here to free memory.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tdlib.errors import ConfigError, InputShapeError, UnknownNameError

Normalisation = Literal["library", "paper"]
NORMALISATIONS: tuple[str, ...] = ("library", "paper")
#: What Grad-CAM differentiates: the class logit, or the class probability (the reference models
#: end in a softmax, so the paper's maps are of the softmax output).
Output = Literal["logit", "softmax"]
OUTPUTS: tuple[str, ...] = ("logit", "softmax")

__all__ = [
    "NORMALISATIONS",
    "OUTPUTS",
    "GradCamExplainer",
    "Normalisation",
    "gradcam",
    "paper_gradcam",
    "paper_normalise",
    "resolve_stage",
    "stage_names",
]


def stage_names(model: nn.Module) -> tuple[str, ...]:
    """Return the model's stage names (``model.stage_names``), or its ``nn.Identity`` children.

    Args:
        model: a tdlib classifier.

    Returns:
        The names a caller may pass as ``stage``.
    """
    names = getattr(model, "stage_names", None)
    if names is not None:
        return tuple(names)
    return tuple(n for n, m in model.named_modules() if n and isinstance(m, nn.Identity))


def resolve_stage(model: nn.Module, stage: str | None = None) -> tuple[str, nn.Module]:
    """Return ``(name, module)`` of the stage to hook.

    Args:
        model: a tdlib classifier.
        stage: a stage name (``"act_3"``) or any submodule path; ``None`` means
            ``model.default_cam_stage`` (or the last stage name).

    Returns:
        The stage name and ``model.get_submodule(name)``.

    Raises:
        UnknownNameError: ``stage`` names no submodule; the message lists the model's stages.
    """
    names = stage_names(model)
    if stage is None:
        stage = getattr(model, "default_cam_stage", None) or (names[-1] if names else None)
    if not isinstance(stage, str) or not stage:
        raise UnknownNameError("stage", stage, names)
    try:
        module = model.get_submodule(stage)
    except AttributeError:
        raise UnknownNameError("stage", stage, names) from None
    return stage, module


def paper_normalise(
    raw: torch.Tensor, size: tuple[int, int], *, eps: float = 1e-12
) -> torch.Tensor:
    """Normalise raw Grad-CAM maps the way the reference code does.

    Subtract the per-map mean, L2-normalise, resize bilinearly (``align_corners=False``) to
    ``size``, ReLU, divide by the max. Maps whose max is 0 stay all zeros.

    Args:
        raw: (N, h, w) maps ``sum_k alpha_k A_k`` before any ReLU.
        size: output (H, W).
        eps: guards the L2 norm of a constant map.

    Returns:
        (N, H, W) float32 maps in [0, 1].
    """
    if raw.ndim != 3:
        raise InputShapeError(f"raw maps must be (N, h, w), got shape {tuple(raw.shape)}")
    cam = raw.float()
    cam = cam - cam.mean(dim=(1, 2), keepdim=True)
    norm = cam.flatten(1).norm(dim=1).clamp_min(eps)
    cam = cam / norm[:, None, None]
    cam = F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    cam = cam.clamp_min(0)
    peak = cam.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(torch.finfo(cam.dtype).tiny), 0.0)


@functools.cache
def _cam_classes() -> dict[str, Any]:
    """Build the CAM classes on first use (importing pytorch_grad_cam takes seconds)."""
    from pytorch_grad_cam import GradCAM

    class PaperGradCAM(GradCAM):
        """GradCAM with the reference code's normalisation (see :func:`paper_normalise`)."""

        def compute_cam_per_layer(
            self, input_tensor: torch.Tensor, targets: list[Any], eigen_smooth: bool
        ) -> list[np.ndarray]:
            acts = [a.cpu().numpy() for a in self.activations_and_grads.activations]
            grads = [g.cpu().numpy() for g in self.activations_and_grads.gradients]
            size = (int(input_tensor.shape[-2]), int(input_tensor.shape[-1]))
            out = []
            for layer, act, grad in zip(self.target_layers, acts, grads, strict=True):
                raw = self.get_cam_image(input_tensor, layer, targets, act, grad, eigen_smooth)
                cam = paper_normalise(torch.from_numpy(np.asarray(raw)), size)
                out.append(cam.numpy()[:, None])
            return out

        def aggregate_multi_layers(self, cam_per_target_layer: list[np.ndarray]) -> np.ndarray:
            cams = np.concatenate(cam_per_target_layer, axis=1).mean(axis=1)
            peak = cams.max(axis=(1, 2), keepdims=True)
            scaled = np.divide(cams, peak, out=np.zeros_like(cams), where=peak > 0)
            return scaled.astype(np.float32)

    return {"library": GradCAM, "paper": PaperGradCAM}


def _check_images(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputShapeError(f"x must be a float (N, C, H, W) tensor, got {shape}")
    x = x.detach()
    if x.numel() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise InputShapeError(f"x holds {bad} NaN/inf value(s); Grad-CAM needs finite images in [0, 1]")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise InputShapeError(
            f"x must lie in [0, 1] pixel space (normalisation is the model's first layer); got "
            f"min {float(x.min()):.4g}, max {float(x.max()):.4g} (images in 0-255? divide by 255)")


def _check_targets(targets: Sequence[int] | torch.Tensor, n: int, num_classes: int | None) -> list[int]:
    t = torch.as_tensor(targets)
    if t.is_floating_point() or t.dtype == torch.bool:
        raise InputShapeError(f"targets must be integer class indices, got dtype {t.dtype}")
    tlist = [int(v) for v in t.reshape(-1).tolist()]
    if len(tlist) != n:
        raise InputShapeError(f"got {len(tlist)} targets for {n} images")
    if num_classes is not None:
        bad = sorted({v for v in tlist if not 0 <= v < num_classes})
        if bad:
            raise InputShapeError(f"targets {bad[:5]} are outside [0, {num_classes}): a negative "
                                  f"index would silently explain another class")
    return tlist


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    raise ConfigError("Grad-CAM needs a model with at least one parameter")


class GradCamExplainer:
    """Context manager that owns Grad-CAM hooks on one stage of one model.

    On entry the model is put in eval mode (and moved to ``device`` if given) and the hooks are
    registered; on exit (also on error) the hooks are removed and the model's training flag,
    device and parameter gradients are restored. Reuse one explainer for many calls.

    Example:
        >>> with GradCamExplainer(model, stage="act_3") as explain:  # doctest: +SKIP
        ...     maps = explain(x)                 # (N, H, W) in [0, 1], predicted classes
        ...     maps_y = explain(x, targets=y)    # for given class indices

    Args:
        model: a tdlib classifier (float NCHW in [0, 1] in, logits out).
        stage: stage name; ``None`` means ``model.default_cam_stage``.
        normalisation: ``"library"`` (pytorch-grad-cam) or ``"paper"`` (reference code); see the
            module docstring for the difference.
        batch_size: images per forward/backward pass.
        device: where to run; ``None`` keeps the model's device. A model moved here is moved back
            on exit.
        output: ``"logit"`` (differentiate the class logit) or ``"softmax"`` (the class
            probability, as the reference models end in a softmax).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        stage: str | None = None,
        normalisation: Normalisation = "library",
        batch_size: int = 64,
        device: torch.device | str | None = None,
        output: Output = "logit",
    ) -> None:
        if normalisation not in NORMALISATIONS:
            raise UnknownNameError("normalisation", normalisation, NORMALISATIONS)
        if output not in OUTPUTS:
            raise UnknownNameError("Grad-CAM output", output, OUTPUTS)
        self.output = output
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
        self.model = model
        self.stage, self.layer = resolve_stage(model, stage)
        self.normalisation = normalisation
        self.batch_size = batch_size
        self.device = torch.device(device) if device is not None else None
        self._cam: Any = None
        self._was_training = model.training
        self._home: torch.device | None = None
        self._grads: list[tuple[nn.Parameter, torch.Tensor | None]] = []

    def __repr__(self) -> str:
        return (
            f"GradCamExplainer(model={type(self.model).__name__}, stage={self.stage!r}, "
            f"normalisation={self.normalisation!r}, output={self.output!r}, "
            f"batch_size={self.batch_size})"
        )

    def __enter__(self) -> GradCamExplainer:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Register the hooks (idempotent); prefer the ``with`` statement."""
        if self._cam is not None:
            return
        self._was_training = self.model.training
        self._grads = [(p, p.grad) for p in self.model.parameters()]
        home = _model_device(self.model)
        if self.device is not None and self.device != home:
            self._home = home
            self.model.to(self.device)
        try:
            cls = _cam_classes()[self.normalisation]
            self._cam = cls(model=self.model, target_layers=[self.layer])  # calls model.eval()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Remove the hooks and restore the model's state (idempotent)."""
        cam, self._cam = self._cam, None
        if cam is not None:
            cam.outputs = None
            cam.activations_and_grads.release()
        if self._home is not None:
            self.model.to(self._home)
            self._home = None
        for p, g in self._grads:
            p.grad = g
        self._grads = []
        self.model.train(self._was_training)

    def __call__(
        self, x: torch.Tensor, targets: Sequence[int] | torch.Tensor | None = None
    ) -> torch.Tensor:
        """Compute Grad-CAM maps.

        Args:
            x: (N, C, H, W) float images in [0, 1]; not modified.
            targets: one class index in ``[0, num_classes)`` per image; ``None`` uses each image's
                top-1 prediction.

        Returns:
            (N, H, W) float32 CPU tensor in [0, 1] at the input resolution.

        Raises:
            InputShapeError: ``x`` is not a finite float NCHW tensor in [0, 1], or ``targets`` has
                the wrong length, dtype or a class index out of range.
            RuntimeError: the explainer is not open (use ``with``).
        """
        if self._cam is None:
            raise RuntimeError("GradCamExplainer is closed; use it inside a `with` block")
        _check_images(x)
        n = x.shape[0]
        num_classes = getattr(self.model, "num_classes", None)
        tlist: list[int] | None = None
        if targets is not None:
            tlist = _check_targets(targets, n, num_classes)
        elif self.output == "softmax" and n:
            with torch.no_grad():
                dev = _model_device(self.model)
                tlist = torch.cat([self.model(x[s : s + self.batch_size].to(dev)).argmax(1).cpu()
                                   for s in range(0, n, self.batch_size)]).tolist()
        from pytorch_grad_cam.utils.model_targets import (
            ClassifierOutputSoftmaxTarget,
            ClassifierOutputTarget,
        )

        target_cls = ClassifierOutputSoftmaxTarget if self.output == "softmax" else ClassifierOutputTarget
        device = _model_device(self.model)
        frozen = not any(p.requires_grad for p in self.model.parameters())
        out = []
        for start in range(0, n, self.batch_size):
            xb = x[start : start + self.batch_size].detach().to(device, copy=True)
            if frozen:
                xb.requires_grad_(True)
            tb = None
            if tlist is not None:
                tb = [target_cls(t) for t in tlist[start : start + self.batch_size]]
            try:
                with torch.enable_grad():
                    maps = self._cam(input_tensor=xb, targets=tb)
            finally:
                self._cam.outputs = None
                self._cam.activations_and_grads.clear()
            out.append(torch.from_numpy(maps).float())
        if not out:
            return torch.zeros(0, x.shape[-2], x.shape[-1])
        return torch.cat(out)


def gradcam(
    model: nn.Module,
    x: torch.Tensor,
    *,
    stage: str | None = None,
    targets: Sequence[int] | torch.Tensor | None = None,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    normalisation: Normalisation = "library",
    output: Output = "logit",
) -> torch.Tensor:
    """Grad-CAM maps of ``model`` at ``stage`` for a batch of images.

    The model runs in eval mode for the call; its training flag, device and parameter gradients
    are restored afterwards and the hooks are always removed.

    Args:
        model: a tdlib classifier (float NCHW in [0, 1] in, logits out).
        x: (N, C, H, W) images in [0, 1]; not modified.
        stage: stage name (``model.stage_names``); ``None`` means ``model.default_cam_stage``.
        targets: class index per image; ``None`` uses the predicted (top-1) class, as the paper.
        batch_size: images per forward/backward pass.
        device: where to run; ``None`` keeps the model's device.
        normalisation: ``"library"`` (pytorch-grad-cam default) or ``"paper"`` (reference code).
        output: ``"logit"`` or ``"softmax"`` (the reference's models end in a softmax).

    Returns:
        (N, H, W) float32 CPU tensor in [0, 1] at the input resolution.

    Raises:
        UnknownNameError: unknown ``stage`` (the message lists the model's stage names).
        InputShapeError: ``x`` is not a finite float NCHW tensor in [0, 1], or ``targets`` has
            the wrong length or a class index out of range.
    """
    with GradCamExplainer(
        model, stage=stage, normalisation=normalisation, batch_size=batch_size, device=device,
        output=output,
    ) as explain:
        return explain(x, targets)


def paper_gradcam(
    model: nn.Module,
    x: torch.Tensor,
    *,
    stage: str | None = None,
    targets: Sequence[int] | torch.Tensor | None = None,
    batch_size: int = 64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """:func:`gradcam` as the reference computes it: its normalisation and the softmax output.

    Args:
        model: a tdlib classifier.
        x: (N, C, H, W) images in [0, 1]; not modified.
        stage: stage name; ``None`` means ``model.default_cam_stage``.
        targets: class index per image; ``None`` uses the predicted class.
        batch_size: images per forward/backward pass.
        device: where to run; ``None`` keeps the model's device.

    Returns:
        (N, H, W) float32 CPU tensor in [0, 1].
    """
    return gradcam(
        model,
        x,
        stage=stage,
        targets=targets,
        batch_size=batch_size,
        device=device,
        normalisation="paper",
        output="softmax",
    )
