"""Localisation scores of CAMs against object foreground masks.

The paper's quantitative localisation metric (Exp 3(b)) could not be recovered (reference notes
3.3(b)); the metrics here are ours, chosen to be simple and standard:

* :func:`energy_on_object`: share of a map's mass that falls on the object (the "energy-based
  pointing game" of Score-CAM, Wang et al. 2020). Chance level for a uniform map is the object's
  area share.
* :func:`pointing_game`: whether the map's maximum lies on the (optionally dilated) object
  (Zhang et al. 2016).
* :func:`foreground_mask`: object = pixel > 0.2, the reference segmentation script's foreground
  rule for MNIST / Fashion-MNIST (mean over channels for colour images).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tdlib.errors import InputShapeError
from tdlib.explain.gradcam import Normalisation, Output, gradcam, stage_names

__all__ = ["energy_on_object", "foreground_mask", "localization_per_image", "localization_scores",
           "pointing_game"]


def _check_pair(cams: torch.Tensor, masks: torch.Tensor) -> None:
    if cams.ndim != 3 or masks.shape != cams.shape:
        raise InputShapeError(
            f"cams and masks must both be (N, H, W); got {tuple(cams.shape)} and "
            f"{tuple(masks.shape)}"
        )


def energy_on_object(
    cams: torch.Tensor, masks: torch.Tensor, *, empty: str = "share"
) -> torch.Tensor:
    """Share of each map's mass inside its mask: ``sum(cam * mask) / sum(cam)``.

    Args:
        cams: (N, H, W) non-negative maps (negative values are clipped to 0).
        masks: (N, H, W) boolean object masks.
        empty: what an all-zero map scores. ``"share"`` (default) treats it as a uniform map, so it
            scores the mask's area share, the chance level (an all-zero map carries no
            localisation, and dropping it would bias the mean upwards); ``"nan"`` gives NaN.

    Returns:
        (N,) float32 scores in [0, 1] (or NaN for empty maps with ``empty="nan"``).
    """
    _check_pair(cams, masks)
    if empty not in ("share", "nan"):
        raise InputShapeError(f"empty must be 'share' or 'nan', got {empty!r}")
    c = cams.detach().float().clamp_min(0).flatten(1)
    m = masks.to(device=c.device).bool().flatten(1)
    total = c.sum(dim=1)
    inside = (c * m).sum(dim=1)
    fallback = m.float().mean(dim=1) if empty == "share" else torch.full_like(total, math.nan)
    return torch.where(total > 0, inside / total.clamp_min(torch.finfo(c.dtype).tiny), fallback)


def _dilate(masks: torch.Tensor, radius: int) -> torch.Tensor:
    """Dilate (N, H, W) boolean masks by a disk of ``radius`` pixels."""
    if radius <= 0:
        return masks.bool()
    r = torch.arange(-radius, radius + 1, dtype=torch.float32)
    disk = ((r[:, None] ** 2 + r[None, :] ** 2) <= radius**2).float()
    hit = F.conv2d(masks.float()[:, None], disk[None, None].to(masks.device), padding=radius)
    return hit[:, 0] > 0


def pointing_game(cams: torch.Tensor, masks: torch.Tensor, *, tolerance: int = 0) -> torch.Tensor:
    """Pointing-game hits: does each map's maximum fall on its object?

    The maximum is ``argmax`` in row-major order (first of tied maxima). The mask is dilated by a
    disk of ``tolerance`` pixels first (Zhang et al. use 15 px on ImageNet-size images). An
    all-zero map points nowhere and counts as a miss.

    Args:
        cams: (N, H, W) maps.
        masks: (N, H, W) boolean object masks.
        tolerance: dilation radius in pixels, >= 0.

    Returns:
        (N,) boolean tensor of hits.
    """
    _check_pair(cams, masks)
    if tolerance < 0:
        raise InputShapeError(f"tolerance must be >= 0, got {tolerance}")
    c = cams.detach().float().flatten(1)
    m = _dilate(masks.to(c.device).bool(), tolerance).flatten(1)
    idx = c.argmax(dim=1)
    hit = m.gather(1, idx[:, None])[:, 0]
    return hit & (c.amax(dim=1) > 0)


def foreground_mask(x: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """Object foreground of images in [0, 1]: channel mean > ``threshold``.

    Args:
        x: (N, C, H, W) images in [0, 1] (MNIST-like: bright object on a black background).
        threshold: foreground threshold; 0.2 as in the reference segmentation script.

    Returns:
        (N, H, W) boolean masks.
    """
    if x.ndim != 4:
        raise InputShapeError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    return x.detach().float().mean(dim=1) > threshold


def localization_per_image(
    model: nn.Module,
    x: torch.Tensor,
    *,
    stages: Sequence[str] | None = None,
    masks: torch.Tensor | None = None,
    threshold: float = 0.2,
    tolerance: int = 0,
    normalisation: Normalisation = "paper",
    output: Output = "softmax",
    batch_size: int = 64,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-image localisation of the predicted class's Grad-CAM map at each stage.

    Defaults follow the reference: its normalisation and the softmax output as the target.

    Returns:
        stage -> ((N,) energy on the object, (N,) pointing-game hits).
    """
    if masks is None:
        masks = foreground_mask(x, threshold)
    masks = masks.bool().cpu()
    out = {}
    for stage in stages if stages is not None else stage_names(model):
        cams = gradcam(model, x, stage=stage, batch_size=batch_size, normalisation=normalisation,
                       output=output)
        out[stage] = (energy_on_object(cams, masks), pointing_game(cams, masks, tolerance=tolerance))
    return out


def localization_scores(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | Sequence[int] | None = None,
    *,
    stages: Sequence[str] | None = None,
    masks: torch.Tensor | None = None,
    target: str = "predicted",
    threshold: float = 0.2,
    tolerance: int = 0,
    normalisation: Normalisation = "library",
    batch_size: int = 64,
) -> list[dict[str, Any]]:
    """Grad-CAM localisation per stage: energy on object and pointing-game hit rate.

    Args:
        model: a tdlib classifier.
        x: (N, C, H, W) images in [0, 1].
        y: (N,) true labels; needed for ``target="label"`` and for the accuracy column.
        stages: stage names; ``None`` means all of ``model.stage_names``.
        masks: (N, H, W) object masks; ``None`` means :func:`foreground_mask` of ``x``.
        target: ``"predicted"`` (the paper's choice: top-1 class) or ``"label"``.
        threshold: foreground threshold when ``masks`` is ``None``.
        tolerance: pointing-game tolerance in pixels.
        normalisation: Grad-CAM normalisation, ``"library"`` or ``"paper"``.
        batch_size: images per Grad-CAM pass.

    Returns:
        One dict per stage with keys ``stage, n, energy_mean, energy_std, pointing, accuracy``
        (``accuracy`` is NaN without ``y``), ready for ``pandas.DataFrame``.
    """
    if target not in ("predicted", "label"):
        raise InputShapeError(f"target must be 'predicted' or 'label', got {target!r}")
    labels = None if y is None else torch.as_tensor(y).reshape(-1).long().cpu()
    if labels is not None and labels.numel() != x.shape[0]:
        raise InputShapeError(f"got {labels.numel()} labels for {x.shape[0]} images")
    if target == "label" and labels is None:
        raise InputShapeError("target='label' needs y")
    if masks is None:
        masks = foreground_mask(x, threshold)
    masks = masks.bool().cpu()
    accuracy = math.nan
    if labels is not None:
        was_training = model.training
        model.eval()
        try:
            device = next(model.parameters()).device
            with torch.no_grad():
                pred = torch.cat(
                    [
                        model(x[i : i + batch_size].to(device)).argmax(1).cpu()
                        for i in range(0, x.shape[0], batch_size)
                    ]
                )
        finally:
            model.train(was_training)
        accuracy = (pred == labels).float().mean().item()
    rows = []
    for stage in stages if stages is not None else stage_names(model):
        cams = gradcam(
            model,
            x,
            stage=stage,
            targets=labels if target == "label" else None,
            batch_size=batch_size,
            normalisation=normalisation,
        )
        energy = energy_on_object(cams, masks)
        hits = pointing_game(cams, masks, tolerance=tolerance)
        rows.append(
            {
                "stage": stage,
                "n": int(cams.shape[0]),
                "energy_mean": energy.mean().item(),
                "energy_std": energy.std().item() if energy.numel() > 1 else 0.0,
                "pointing": hits.float().mean().item(),
                "accuracy": accuracy,
            }
        )
    return rows
