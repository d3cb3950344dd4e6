"""Exp 2: attack sweeps against trained models, curves, and the per-scale perturbation study."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdlib.attacks import AttackResult, accuracy_loss_curve, attack_summary, robustness_sweep
from tdlib.config import AttackConfig, RunConfig, as_tuple, config_hash, get_profile, run_config
from tdlib.errors import ConfigError
from tdlib.io import read_json, run_dir
from tdlib.models.base import TDLibModel
from tdlib.training import RunResult, fit_or_load, get_dataset

#: Input subsets of the per-scale study (supplement Fig 3); index 0 = full resolution.
SCALE_SUBSETS: dict[str, tuple[int, ...]] = {
    "high": (0,), "medium": (1,), "low": (2,),
    "high-medium": (0, 1), "high-low": (0, 2), "medium-low": (1, 2), "all": (0, 1, 2),
}


@dataclass
class RobustnessRun:
    """A trained model and its merged attack results on a fixed test sample."""

    model_run: RunResult
    x: torch.Tensor
    y: torch.Tensor
    results: dict[str, AttackResult]
    folder: Path
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        c = self.model_run.config
        return f"{c.model.backbone}/{c.model.variant}"

    def summaries(self) -> list[dict[str, Any]]:
        c = self.model_run.config
        return [
            {"dataset": c.data.dataset, "backbone": c.model.backbone, "variant": c.model.variant,
             **attack_summary(r), "seconds": self.seconds.get(a, float("nan"))}
            for a, r in self.results.items()
        ]

    def curves(self) -> list[dict[str, Any]]:
        c = self.model_run.config
        rows = []
        for attack, r in self.results.items():
            d, loss = accuracy_loss_curve(r.l2.numpy(), r.n)
            rows += [{"dataset": c.data.dataset, "backbone": c.model.backbone,
                      "variant": c.model.variant, "attack": attack, "l2": float(a),
                      "loss": float(b)} for a, b in zip(d, loss)]
        return rows


def test_sample(data: Any, n: int | None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` test images (a seeded permutation, as the paper's shuffled batches) and labels."""
    total = len(data.test)
    idx = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    idx = idx[: min(n, total)] if n is not None else idx
    return data.test.images(idx), data.test.y[idx]


def attack_model(
    cfg: RunConfig,
    attacks: Sequence[str] | str,
    *,
    n_samples: int | None,
    reps: int,
    protocol: str = "paper",
    seed: int = 0,
    device: str = "auto",
    runs_root: str | Path | None = None,
    progress: bool = True,
) -> RobustnessRun:
    """Train/reuse the model of ``cfg`` (repetition 0) and sweep ``attacks`` on its test sample."""
    acfg = AttackConfig(attacks=as_tuple(attacks), n_samples=n_samples, repetitions=reps,
                        protocol=protocol, seed=seed)
    data = get_dataset(cfg.data)
    run = fit_or_load(cfg, rep=0, runs_root=runs_root, device=device, data=data,
                      progress=progress)
    x, y = test_sample(data, acfg.n_samples, seed)
    key = f"{cfg.data.dataset}-{cfg.model.backbone}-{cfg.model.variant}-{config_hash(cfg)}"
    sub = f"{protocol}-n{len(y)}-r{reps}-s{seed}"
    folder = run_dir(runs_root, "robustness", key) / sub
    model = run.model.eval()
    results = robustness_sweep(model, x, y, acfg.attacks, out_dir=folder, reps=reps,
                               protocol=protocol, seed=seed, batch_size=acfg.batch_size,
                               device=device if device != "auto" else None, progress=progress)
    summary = read_json(folder / "summary.json")
    seconds = {a: float(v.get("seconds", float("nan"))) for a, v in summary.items()}
    return RobustnessRun(run, x, y, results, folder, seconds)


def robustness_grid(
    *,
    profile: str,
    datasets: Sequence[str] | str,
    backbones: Sequence[str] | str,
    variants: Sequence[str] | str,
    attacks: Sequence[str] | str,
    n_samples: int | None = None,
    reps: int | None = None,
    protocol: str = "paper",
    seed: int = 0,
    device: str = "auto",
    runs_root: str | Path | None = None,
    data_root: str | None = None,
    progress: bool = True,
) -> list[RobustnessRun]:
    """:func:`attack_model` for every trained (dataset, backbone, variant); sizes from ``profile``."""
    from tdlib.config import DATASET_BACKBONES

    prof = get_profile(profile)
    n = n_samples if n_samples is not None else prof.attack_samples
    r = reps if reps is not None else prof.attack_repetitions
    runs = []
    for d, b, v in itertools.product(as_tuple(datasets), as_tuple(backbones), as_tuple(variants)):
        if b not in DATASET_BACKBONES.get(d, ()):
            continue
        cfg = run_config(d, b, v, profile=profile, seed=seed, root=data_root)
        runs.append(attack_model(cfg, attacks, n_samples=n, reps=r, protocol=protocol,
                                 seed=seed, device=device, runs_root=runs_root, progress=progress))
    if not runs:
        raise ConfigError(f"no trained model among datasets {datasets} x backbones {backbones}")
    return runs


def median_l2_table(runs: Sequence[RobustnessRun]) -> list[dict[str, Any]]:
    """Per (dataset, backbone, attack): median minimal L2 and AUC of each variant, and who wins."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for run in runs:
        for s in run.summaries():
            key = (s["dataset"], s["backbone"], s["attack"])
            row = rows.setdefault(key, {"dataset": key[0], "backbone": key[1], "attack": key[2]})
            row[f"median_l2_{s['variant']}"] = s["median_l2"]
            row[f"auc_{s['variant']}"] = s["auc"]
            row[f"success_{s['variant']}"] = s["success_rate"]
    for row in rows.values():
        bu, td = row.get("median_l2_bu"), row.get("median_l2_td")
        if bu is not None and td is not None:
            row["more_robust"] = "TD" if td > bu else ("BU" if bu > td else "tie")
    return list(rows.values())


@torch.no_grad()
def scale_perturbation(
    model: TDLibModel, x: torch.Tensor, y: torch.Tensor, result: AttackResult,
    *, batch_size: int = 256,
) -> dict[str, float]:
    """Accuracy (%) of a TD model when only some pyramid inputs see the adversarial image.

    The adversarials of ``result`` (found against the single-input model; the clean image where
    the attack failed) go to the inputs of each subset in :data:`SCALE_SUBSETS`, the clean image to
    the others, through ``model.forward_multi``.
    """
    n_scales = int(getattr(model, "num_scales", 1))
    if n_scales != 3 or not hasattr(model, "forward_multi"):
        raise ConfigError("scale_perturbation needs a 3-scale TD model (lenetfc/nin_light/nin/resnet32)")
    model.eval()
    device = next(model.parameters()).device
    x_adv = torch.where(result.success[:, None, None, None], result.x_adv, x)
    out: dict[str, float] = {"clean": 0.0}
    subsets = {"clean": (), **SCALE_SUBSETS}
    for name, subset in subsets.items():
        correct = 0
        for s in range(0, len(y), batch_size):
            xc, xa = x[s : s + batch_size].to(device), x_adv[s : s + batch_size].to(device)
            inputs = [xa if i in subset else xc for i in range(n_scales)]
            pred = model.forward_multi(inputs).argmax(1).cpu()
            correct += int((pred == y[s : s + batch_size]).sum())
        out[name] = 100.0 * correct / max(len(y), 1)
    return out


@torch.no_grad()
def scale_removal(model: TDLibModel, x: torch.Tensor, y: torch.Tensor,
                  *, batch_size: int = 256) -> dict[str, float]:
    """Accuracy (%) with each side branch silenced in turn (``model.silence(scale)``)."""
    model.eval()
    device = next(model.parameters()).device

    def acc() -> float:
        pred = torch.cat([model(x[s : s + batch_size].to(device)).argmax(1).cpu()
                          for s in range(0, len(y), batch_size)])
        return 100.0 * float((pred == y).float().mean())

    names = {0: "high", 1: "medium", 2: "low"}
    out = {"none": acc()}
    for scale in range(int(getattr(model, "num_scales", 1)) - 1):
        with model.silence(scale):
            out[names.get(scale, str(scale))] = acc()
    return out


def loss_at(result: AttackResult, l2: float) -> float:
    """Accuracy loss (% of samples) at L2 budget ``l2`` (a point on the paper's curve)."""
    d = result.l2.numpy()
    return 100.0 * float(np.sum((d > 0) & (d <= l2))) / max(result.n, 1)


#: Attack families of the paper's claims.
FAMILIES: dict[str, frozenset[str]] = {
    "noise": frozenset({"pointwise", "salt_and_pepper", "additive_gaussian", "additive_uniform",
                        "blended_uniform", "single_pixel"}),
    "blur": frozenset({"gaussian_blur"}),
    "spatial": frozenset({"spatial", "shifts"}),
}


def family_verdicts(table: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per attack family: in how many (dataset, backbone, attack) cases TD / BU had the larger
    median minimal L2, and the verdict on the paper's expectation (TD wins for noise and blur,
    not for spatial attacks)."""
    from tdlib.experiments.claims import robustness_verdict

    out = {}
    for family, names in FAMILIES.items():
        rows = [t for t in table if t["attack"] in names and "more_robust" in t]
        td = sum(t["more_robust"] == "TD" for t in rows)
        bu = sum(t["more_robust"] == "BU" for t in rows)
        out[family] = {"td_more_robust": td, "bu_more_robust": bu, "cases": len(rows),
                       "verdict": robustness_verdict(td, bu, expect_td_better=family != "spatial")}
    return out


def example_images(runs: Sequence[RobustnessRun], attack: str, k: int = 6) -> dict[str, torch.Tensor]:
    """Rows "<model> original / adversarial / difference" of ``k`` successful examples per run."""
    from tdlib.attacks import select_examples

    rows: dict[str, torch.Tensor] = {}
    for r in runs:
        if attack not in r.results:
            continue
        ex = select_examples(r.results[attack], k, x=r.x)
        if len(ex["index"]):
            for part in ("original", "adversarial", "difference"):
                rows[f"{r.label} {part}"] = ex[part]
    return rows
