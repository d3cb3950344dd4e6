"""Exp 3: Grad-CAM localisation scores (MNIST / Fashion-MNIST) and Imagenette BU vs TD."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from tdlib.config import as_tuple, get_profile, run_config
from tdlib.experiments.robustness import test_sample
from tdlib.explain import gradcam, localization_scores, road_scores
from tdlib.training import RunResult, fit_repetitions, get_dataset, mean_std, predict


def localisation_grid(
    *,
    profile: str,
    datasets: Sequence[str] | str = ("mnist", "fashion_mnist"),
    backbone: str = "nin_light",
    variants: Sequence[str] | str = ("bu", "td"),
    n_images: int | None = None,
    seed: int = 0,
    device: str = "auto",
    runs_root: str | Path | None = None,
    data_root: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Localisation per (dataset, variant, repetition, stage) on ``n_images`` test images.

    Scores: share of CAM energy on the object (foreground = pixel > 0.2) and pointing-game hit
    rate, for the predicted class; every trained repetition counts as one model.
    """
    n = n_images if n_images is not None else get_profile(profile).explain_images
    rows: list[dict[str, Any]] = []
    for d, v in itertools.product(as_tuple(datasets), as_tuple(variants)):
        cfg = run_config(d, backbone, v, profile=profile, seed=seed, root=data_root)
        data = get_dataset(cfg.data)
        x, y = test_sample(data, n, seed)
        for run in fit_repetitions(cfg, runs_root=runs_root, device=device, data=data,
                                   progress=progress):
            for s in localization_scores(run.model.cpu(), x, y):
                rows.append({"dataset": d, "backbone": backbone, "variant": v, "rep": run.rep, **s})
    return rows


def aggregate_localisation(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std over repetitions of the per-model scores, per (dataset, variant, stage)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["variant"], r["stage"]), []).append(r)
    out = []
    for (d, v, s), rs in groups.items():
        e_mean, e_std = mean_std([r["energy_mean"] for r in rs])
        p_mean, p_std = mean_std([r["pointing"] for r in rs])
        out.append({"dataset": d, "variant": v, "stage": s, "models": len(rs),
                    "energy": e_mean, "energy_std": e_std, "pointing": p_mean,
                    "pointing_std": p_std, "accuracy": mean_std([r["accuracy"] for r in rs])[0]})
    return out


def imagenette_models(
    *, profile: str, variants: Sequence[str] | str = ("bu", "td"), seed: int = 0,
    device: str = "auto", runs_root: str | Path | None = None, data_root: str | None = None,
    progress: bool = True,
) -> dict[str, RunResult]:
    """Train (or reuse) ResNet18-half BU and TD on Imagenette at ``profile``."""
    out = {}
    for v in as_tuple(variants):
        cfg = run_config("imagenette", "resnet18_half", v, profile=profile, seed=seed,
                         root=data_root)
        out[v] = fit_repetitions(cfg, runs_root=runs_root, device=device, progress=progress)[0]
    return out


def correctly_classified(models: dict[str, RunResult], k: int,
                         seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``k`` test images that every model classifies correctly (supplement Fig 5)."""
    first = next(iter(models.values()))
    data = get_dataset(first.config.data)
    x, y = test_sample(data, None, seed)
    ok = torch.ones(len(y), dtype=torch.bool)
    for r in models.values():
        ok &= predict(r.model.cpu(), x, device=torch.device("cpu")) == y
    idx = torch.nonzero(ok).flatten()[:k]
    return x[idx], y[idx]


def imagenette_scores(models: dict[str, RunResult], x: torch.Tensor,
                      y: torch.Tensor) -> list[dict[str, Any]]:
    """Per model: test accuracy, ROAD faithfulness of its last-stage Grad-CAM on ``x``."""
    rows = []
    for v, r in models.items():
        model = r.model.cpu().eval()
        cams = gradcam(model, x)
        road = road_scores(model, x, cams)
        rows.append({"variant": v, "test_accuracy": 100.0 * r.test_accuracy,
                     "cam_stage": getattr(model, "default_cam_stage", ""),
                     "road_mean": float(road.mean()), "road_std": float(road.std()),
                     "n_images": len(y)})
    return rows
