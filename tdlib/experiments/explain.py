"""Exp 3: Grad-CAM localisation (MNIST / Fashion-MNIST) and Imagenette BU vs TD.

Localisation follows the reference: Grad-CAM of the predicted class, with the reference's
normalisation and the softmax output as the target, scored per image at every stage; the final
feature map (``model.default_cam_stage``: LeNet/NIN ``act_3``, ResNets the last BN-ReLU) decides
the claim, the other stages are shown only (BU and TD maps there have different resolutions). The
library normalisation with a logit target is computed once, at the final map, as a sensitivity
check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tdlib.bitstring import bits, unbits
from tdlib.config import run_config
from tdlib.data import BoxedImages, load_boxed_imagenette
from tdlib.experiments.models import ProvidedModel, provide, zoo_has
from tdlib.experiments.params import Common, ImagenetteParams, LocalisationParams
from tdlib.experiments.records import (
    ImagenetteEval,
    ImagenetteResult,
    LocalisationEval,
    LocalisationResult,
)
from tdlib.experiments.robustness import test_sample
from tdlib.explain import gradcam, road_scores
from tdlib.explain.gradcam import Normalisation, Output, stage_names
from tdlib.explain.localization import localization_per_image
from tdlib.training import mean_std, predict
from tdlib.zoo import evaluate_entry, find_entry

__all__ = [
    "LOCALISATION_BACKBONE",
    "ImagenetteRun",
    "LocalisationRun",
    "aggregate",
    "box_localisation",
    "correctly_classified",
    "run_imagenette",
    "run_localisation",
]

LOCALISATION_BACKBONE = "nin_light"
#: the sensitivity check, computed at the final feature map only
SENSITIVITY: tuple[Normalisation, Output] = ("library", "logit")


@dataclass(frozen=True)
class LocalisationRun:
    """What :func:`run_localisation` returns: the record, the models and the scored images."""

    record: LocalisationResult
    models: tuple[ProvidedModel, ...]
    samples: dict[str, tuple[torch.Tensor, torch.Tensor]]


def _seeds(dataset: str, variant: str, common: Common, use_zoo: bool) -> list[int]:
    """Repetitions to score: every zoo seed from ``SEED`` on, or the profile's repetitions."""
    if use_zoo and zoo_has(dataset, LOCALISATION_BACKBONE, variant, common.seed):
        reps = [0]
        while zoo_has(dataset, LOCALISATION_BACKBONE, variant, common.seed + len(reps)):
            reps.append(len(reps))
        return reps
    cfg = run_config(dataset, LOCALISATION_BACKBONE, variant, profile=common.profile)
    return list(range(cfg.train.repetitions))


def run_localisation(params: LocalisationParams, *, progress: bool = True) -> LocalisationRun:
    """Score every model's Grad-CAM maps against the object masks of the same test images."""
    common = params.common
    evals: list[LocalisationEval] = []
    models: list[ProvidedModel] = []
    samples: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for d in params.datasets:
        for v in params.variants:
            for rep in _seeds(d, v, common, params.use_zoo):
                pm = provide(d, LOCALISATION_BACKBONE, v, common, pretrained=params.use_zoo,
                             rep=rep, require_zoo=params.pretrained is True, progress=progress)
                x, y = test_sample(pm.data, params.images, common.seed)
                where = "official test set" if pm.ref.source == "zoo" else "profile test subset"
                images = f"{d} {where}, first {len(y)} of permutation seed {common.seed}"
                samples.setdefault(f"{d} ({where})", (x, y))
                model = pm.model.cpu().eval()
                final = str(getattr(model, "default_cam_stage", ""))
                scores = localization_per_image(model, x)
                for stage, (energy, hits) in scores.items():
                    evals.append(LocalisationEval(pm.ref, stage, stage == final, "paper", "softmax",
                                                  images, tuple(energy.tolist()), bits(hits)))
                energy, hits = localization_per_image(
                    model, x, stages=[final], normalisation=SENSITIVITY[0],
                    output=SENSITIVITY[1])[final]
                evals.append(LocalisationEval(pm.ref, final, True, *SENSITIVITY, images,
                                              tuple(energy.tolist()), bits(hits)))
                models.append(pm)
    return LocalisationRun(LocalisationResult(params.meta(), tuple(evals)), tuple(models), samples)


def aggregate(record: LocalisationResult) -> list[dict[str, Any]]:
    """Mean ± std over models of the per-model mean scores, per (dataset, variant, stage,
    protocol), for tables and bar charts."""
    groups: dict[tuple[str, str, str, str, bool], list[LocalisationEval]] = {}
    for e in record.evals:
        protocol = f"{e.normalisation}/{e.target}"
        groups.setdefault((e.model.dataset, e.model.variant, e.stage, protocol, e.final), []).append(e)
    out = []
    for (d, v, s, protocol, final), es in groups.items():
        e_mean, e_std = mean_std([sum(e.energy) / max(len(e.energy), 1) for e in es])
        p_mean, p_std = mean_std([float(unbits(e.pointing).mean()) for e in es])
        out.append({"dataset": d, "variant": v, "stage": s, "protocol": protocol,
                    "final": final, "models": len(es), "images": len(es[0].energy),
                    "energy": e_mean, "energy_std": e_std, "pointing": p_mean,
                    "pointing_std": p_std})
    return out


@dataclass(frozen=True)
class ImagenetteRun:
    """What :func:`run_imagenette` returns: the record and the two models."""

    record: ImagenetteResult
    models: dict[str, ProvidedModel]


#: boxed images scored at the stages that do not vote (their means are shown only)
STAGE_SAMPLE = 32


def _zoo_correct(pm: ProvidedModel) -> str | None:
    """Per-image correctness of a zoo model on its full validation set (cached per weights)."""
    if pm.ref.source != "zoo":
        return None
    res = evaluate_entry(find_entry(pm.ref.dataset, pm.ref.backbone, pm.ref.variant, pm.ref.seed))
    return bits(res.correct)


def box_localisation(model: torch.nn.Module, boxed: BoxedImages, *, n: int | None = None,
                     stage_sample: int = STAGE_SAMPLE) -> tuple[torch.Tensor, torch.Tensor,
                                                               dict[str, dict[str, float]]]:
    """Score ``model``'s Grad-CAM maps (the predicted class, the reference's normalisation and
    softmax target, upsampled to the input size) against the object boxes.

    Returns:
        (energy, pointing) per boxed image at the final feature map (the first ``n``, all if
        ``None``), and the mean scores of every other stage on the first ``stage_sample`` images.
    """
    x = boxed.images()
    masks = boxed.masks
    if n is not None:
        x, masks = x[:n], masks[:n]
    final = str(getattr(model, "default_cam_stage", ""))
    energy, hits = localization_per_image(model, x, stages=[final], masks=masks)[final]
    others = [st for st in stage_names(model) if st != final]
    k = min(stage_sample, len(x))
    shown: dict[str, dict[str, float]] = {}
    if others and k:
        for st, (e, h) in localization_per_image(model, x[:k], stages=others, masks=masks[:k]).items():
            shown[st] = {"images": float(k), "energy": float(e.mean()), "pointing": float(h.float().mean())}
    return energy, hits, shown


def run_imagenette(params: ImagenetteParams, *, progress: bool = True) -> ImagenetteRun:
    """ResNet18-half BU and TD (the zoo's, or trained at the profile's size): accuracy on the
    validation images, ROAD on a sample, and Grad-CAM localisation on every boxed image."""
    models = {v: provide("imagenette", "resnet18_half", v, params.common, pretrained=params.use_zoo,
                         require_zoo=params.pretrained is True, progress=progress)
              for v in ("bu", "td")}
    evals = []
    boxed_by_size: dict[int, BoxedImages] = {}
    for pm in models.values():
        model = pm.model.cpu().eval()
        correct = _zoo_correct(pm)
        if correct is None:
            x_all, y_all = pm.data.test.images(), pm.data.test.y
            correct = bits((predict(model, x_all, device=torch.device("cpu")) == y_all).numpy())
        xs, _ys = test_sample(pm.data, params.score_images, params.common.seed)
        road = road_scores(model, xs, gradcam(model, xs))
        size = pm.data.input_shape[-1]
        if size not in boxed_by_size:  # BU and TD share their input size: decode once
            boxed_by_size[size] = load_boxed_imagenette(size, params.common.data_dir)
        boxed = boxed_by_size[size]
        energy, hits, shown = box_localisation(model, boxed, n=params.box_images)
        tpc = pm.config.data.test_per_class
        test_set = f"imagenette val, {'all' if tpc is None else tpc}/class, {size} px"
        box_images = (f"imagenette boxed images at {size} px: {len(energy)} of {len(boxed)} "
                      "(val, then boxed train images held out of training)")
        evals.append(ImagenetteEval(
            pm.ref, test_set, correct, tuple(road.tolist()),
            str(getattr(model, "default_cam_stage", "")), box_images,
            tuple(boxed.y[: len(energy)].tolist()), tuple(energy.tolist()), bits(hits.numpy()),
            shown))
    return ImagenetteRun(ImagenetteResult(params.meta(), tuple(evals)), models)


def correctly_classified(models: dict[str, ProvidedModel], k: int, seed: int = 0, *,
                         chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``k`` images of the seeded test permutation that every model classifies correctly
    (supplement Fig 5). Predicts ``chunk`` images at a time and stops once ``k`` are found."""
    first = next(iter(models.values()))
    x, y = test_sample(first.data, None, seed)
    nets = [pm.model.cpu() for pm in models.values()]
    found: list[torch.Tensor] = []
    n_found = 0
    for start in range(0, len(y), chunk):
        if n_found >= k:
            break
        xs, ys = x[start:start + chunk], y[start:start + chunk]
        ok = torch.ones(len(ys), dtype=torch.bool)
        for net in nets:
            ok &= predict(net, xs, device=torch.device("cpu")) == ys
        found.append(torch.nonzero(ok).flatten() + start)
        n_found += len(found[-1])
    idx = torch.cat(found)[:k] if found else torch.zeros(0, dtype=torch.long)
    return x[idx], y[idx]
