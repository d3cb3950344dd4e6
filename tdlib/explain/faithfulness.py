"""Faithfulness of CAMs with ROAD (Rong et al. 2022), via ``pytorch_grad_cam.metrics.road``.

ROAD removes a share of the pixels (the most relevant first, MoRF, or the least relevant first,
LeRF) according to the map, fills them in by noisy linear imputation from their neighbours (a
sparse linear solve per image, so no "hole" artefact the model could react to) and measures the
change of the target class score. ``ROADCombined`` returns ``(LeRF - MoRF) / 2`` averaged over
the percentiles: higher means more faithful (removing what the map calls relevant hurts more
than removing what it calls irrelevant). In grad-cam's convention a percentile ``p`` keeps the
``p`` % of pixels with the lowest (MoRF) or highest (LeRF) relevance and imputes the rest.

Notes on grad-cam 1.5.7:

* The imputer adds Gaussian noise (std 0.01) from torch's global RNG; :func:`road_scores` runs it
  under ``torch.random.fork_rng`` with a fixed seed, so scores are reproducible and the caller's
  RNG stream is untouched.
* Noise is drawn batch by batch, so scores depend on ``seed`` and ``batch_size`` (at the 1e-5
  level for probabilities): compare maps with the same settings.
* grad-cam calls ``np.float32`` on a torch tensor, which warns (``__array_wrap__`` deprecation,
  NumPy 2); that one warning is silenced inside :func:`road_scores` only.
* Imputed pixels may leave [0, 1] by the noise; the model sees them as they are (as in ROAD).
* Cost: two sparse solves (MoRF and LeRF) per image and percentile, on the CPU whatever the
  model's device, each with up to H*W unknowns. Measured on 2 CPU cores with the default three
  percentiles: about 0.06 s per 28x28 image and 0.25 s per 128x128 image. Hence the cheap default
  (grad-cam's own default has nine percentiles, three times the cost).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn

from tdlib.errors import InputShapeError

__all__ = ["road_score", "road_scores"]

DEFAULT_PERCENTILES: tuple[int, ...] = (20, 50, 80)


def road_scores(
    model: nn.Module,
    x: torch.Tensor,
    cams: torch.Tensor,
    *,
    targets: Sequence[int] | torch.Tensor | None = None,
    percentiles: Sequence[int] = DEFAULT_PERCENTILES,
    probabilities: bool = True,
    batch_size: int = 64,
    seed: int = 0,
) -> torch.Tensor:
    """Per-image ROAD-combined faithfulness scores.

    Args:
        model: a tdlib classifier (float NCHW in [0, 1] in, logits out); run in eval mode, its
            training flag is restored.
        x: (N, C, H, W) images in [0, 1]; not modified.
        cams: (N, H, W) maps in [0, 1] for those images.
        targets: class per image; ``None`` uses the model's prediction on ``x``.
        percentiles: ROAD thresholds in (0, 100); grad-cam's own default is 10, 20, ..., 90.
        probabilities: score the softmax probability (as grad-cam's ROAD tutorial) rather than
            the logit.
        batch_size: images per imputation batch.
        seed: seed of the imputation noise.

    Returns:
        (N,) float32 scores (``(LeRF - MoRF) / 2``, in [-0.5, 0.5] for probabilities).
    """
    if x.ndim != 4 or cams.ndim != 3 or cams.shape != (x.shape[0], *x.shape[2:]):
        raise InputShapeError(
            f"need x (N, C, H, W) and cams (N, H, W); got {tuple(x.shape)} and {tuple(cams.shape)}"
        )
    if not percentiles or not all(0 < p < 100 for p in percentiles):
        raise InputShapeError(f"percentiles must lie in (0, 100), got {percentiles!r}")
    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import (
        ClassifierOutputSoftmaxTarget,
        ClassifierOutputTarget,
    )

    target_cls = ClassifierOutputSoftmaxTarget if probabilities else ClassifierOutputTarget
    metric = ROADCombined(percentiles=list(percentiles))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*__array_wrap__", category=DeprecationWarning
            )
            torch.manual_seed(seed)
            for start in range(0, x.shape[0], batch_size):
                xb = x[start : start + batch_size].detach().to(device, copy=True)
                cb = cams[start : start + batch_size].detach().float().cpu().numpy()
                if targets is None:
                    with torch.no_grad():
                        tb = model(xb).argmax(1).tolist()
                else:
                    tb = torch.as_tensor(targets).reshape(-1)[start : start + batch_size].tolist()
                    if len(tb) != xb.shape[0]:
                        raise InputShapeError("need one target per image")
                scores = metric(xb, cb, [target_cls(int(t)) for t in tb], model)
                out.append(torch.as_tensor(scores, dtype=torch.float32).reshape(-1))
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def road_score(
    model: nn.Module,
    x: torch.Tensor,
    cams: torch.Tensor,
    *,
    targets: Sequence[int] | torch.Tensor | None = None,
    percentiles: Sequence[int] = DEFAULT_PERCENTILES,
    probabilities: bool = True,
    batch_size: int = 64,
    seed: int = 0,
) -> float:
    """Mean of :func:`road_scores` over the images.

    Args:
        model: a tdlib classifier.
        x: (N, C, H, W) images in [0, 1].
        cams: (N, H, W) maps in [0, 1].
        targets: class per image; ``None`` uses the prediction.
        percentiles: ROAD thresholds in (0, 100).
        probabilities: score softmax probabilities rather than logits.
        batch_size: images per imputation batch.
        seed: seed of the imputation noise.

    Returns:
        The mean ROAD-combined score.
    """
    return (
        road_scores(
            model,
            x,
            cams,
            targets=targets,
            percentiles=percentiles,
            probabilities=probabilities,
            batch_size=batch_size,
            seed=seed,
        )
        .mean()
        .item()
    )
