"""Exp 2: attack sweeps against BU and TD models, and the per-scale perturbation study.

:func:`run` attacks every model of an :class:`~tdlib.experiments.params.Exp2Params` grid on the
same seeded sample of test images; :func:`run_scales` feeds the adversarials of a single-input TD
network to subsets of its pyramid inputs (supplement Fig 3). Both return the frozen record that
the Results page reads plus the live objects the notebook plots. Attack results are saved per
(model, attack, repetition) as they finish, so an interrupted run resumes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tdlib.attacks import AttackResult, accuracy_loss_curve, attack_summary, robustness_sweep, select_examples
from tdlib.attacks.scales import SCALE_SUBSETS, scale_perturbation, scale_removal
from tdlib.attacks.sweep import rep_path
from tdlib.bitstring import bits, unbits
from tdlib.config import DATASET_BACKBONES
from tdlib.errors import ConfigError
from tdlib.experiments.models import ProvidedModel, provide
from tdlib.experiments.params import SCALE_BACKBONE, Common, Exp2Params, ScaleParams
from tdlib.experiments.records import AttackEval, Exp2Result, ScaleEval, ScaleResult
from tdlib.io import read_json, run_dir
from tdlib.models.base import TDLibModel

__all__ = [
    "SCALE_SUBSETS",
    "Exp2Run",
    "RobustnessRun",
    "ScaleRun",
    "attack_model",
    "example_images",
    "run",
    "run_scales",
    "scale_accuracy_rows",
    "scale_perturbation",
    "scale_removal",
    "test_sample",
]

def test_sample(data: Any, n: int | None, seed: int = 0, *,
                strict: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` test images (a seeded permutation, as the paper's shuffled batches) and labels.

    A profile's default ``n`` larger than the test set takes all of it; with ``strict`` (a number
    the user asked for) that is an error instead of a silent clamp.

    Raises:
        ConfigError: ``strict`` and ``n`` exceeds the test set.
    """
    total = len(data.test)
    if strict and n is not None and n > total:
        raise ConfigError(f"asked for {n} test images but the test set holds {total}; ask for at "
                          f"most {total} (or None for all of them)")
    idx = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    idx = idx[: min(n, total)] if n is not None else idx
    return data.test.images(idx), data.test.y[idx]


def sample_label(pm: ProvidedModel, n: int, seed: int) -> str:
    """How an attacked sample is described (models are paired only on equal labels)."""
    tpc = None if pm.ref.source == "zoo" else pm.config.data.test_per_class
    where = "official test set" if tpc is None else f"test {tpc}/class"
    return f"{pm.ref.dataset} {where}, first {n} of permutation seed {seed}"


@dataclass(frozen=True)
class RobustnessRun:
    """One model and its merged attack results on a fixed test sample (live objects)."""

    provided: ProvidedModel
    x: torch.Tensor
    y: torch.Tensor
    results: dict[str, AttackResult]
    folder: Path
    images: str
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        r = self.provided.ref
        return f"{r.backbone}/{r.variant}"

    @property
    def model(self) -> TDLibModel:
        m = self.provided.model
        assert isinstance(m, TDLibModel)
        return m

    def summaries(self) -> list[dict[str, Any]]:
        r = self.provided.ref
        return [{"dataset": r.dataset, "backbone": r.backbone, "variant": r.variant,
                 "source": r.source, **attack_summary(res),
                 "seconds": self.seconds.get(a, float("nan"))}
                for a, res in self.results.items()]

    def curves(self) -> list[dict[str, Any]]:
        r = self.provided.ref
        rows = []
        for attack, res in self.results.items():
            d, loss = accuracy_loss_curve(res.l2.numpy(), res.n)
            rows += [{"dataset": r.dataset, "backbone": r.backbone, "variant": r.variant,
                      "attack": attack, "l2": float(a), "loss": float(b)} for a, b in zip(d, loss)]
        return rows

    def rep_l2(self, attack: str, rep: int) -> torch.Tensor:
        """Per-image L2 of one repetition of ``attack`` (as saved by the sweep)."""
        state = torch.load(rep_path(self.folder, attack, rep), map_location="cpu", weights_only=True)
        l2: torch.Tensor = state["result"]["l2"]
        return l2

    def evals(self, protocol: str) -> list[AttackEval]:
        return [AttackEval(self.provided.ref, a, protocol, self.images,
                           tuple(float(v) for v in res.l2.tolist()),
                           {**attack_summary(res), "seconds": self.seconds.get(a, float("nan"))})
                for a, res in self.results.items()]


def attack_model(pm: ProvidedModel, attacks: Sequence[str], common: Common, *, n_samples: int | None,
                 reps: int, protocol: str = "paper", progress: bool = True,
                 strict: bool = False) -> RobustnessRun:
    """Sweep ``attacks`` over ``pm``'s test sample (resumable, results saved per repetition);
    ``strict``: ``n_samples`` was asked for explicitly (more than the test set is an error)."""
    x, y = test_sample(pm.data, n_samples, common.seed, strict=strict)
    sub = f"{protocol}-n{len(y)}-r{reps}-s{common.seed}"
    folder = run_dir(common.run_dir, "robustness", pm.key) / sub
    device = common.device if common.device != "auto" else None
    results = robustness_sweep(pm.model.eval(), x, y, attacks, out_dir=folder, reps=reps,
                               protocol=protocol, seed=common.seed, device=device,
                               progress=progress)
    summary = read_json(folder / "summary.json")
    seconds = {a: float(v.get("seconds", float("nan"))) for a, v in summary.items()}
    return RobustnessRun(pm, x, y, results, folder, sample_label(pm, len(y), common.seed), seconds)


@dataclass(frozen=True)
class Exp2Run:
    """What :func:`run` returns: the saved record and the live runs."""

    record: Exp2Result
    runs: tuple[RobustnessRun, ...]


def run(params: Exp2Params, *, progress: bool = True) -> Exp2Run:
    """Attack every trained (dataset, backbone, variant) of the grid."""
    runs = []
    for d, b, v in itertools.product(params.datasets, params.backbones, params.variants):
        if b not in DATASET_BACKBONES[d]:
            continue
        pm = provide(d, b, v, params.common, pretrained=params.use_zoo,
                     require_zoo=params.pretrained is True, progress=progress)
        runs.append(attack_model(pm, params.attack_list, params.common, n_samples=params.n_images,
                                 strict=params.n_samples is not None, reps=params.reps,
                                 protocol=params.protocol, progress=progress))
    evals = tuple(e for r in runs for e in r.evals(params.protocol))
    return Exp2Run(Exp2Result(params.meta(), evals), tuple(runs))


@dataclass(frozen=True)
class ScaleRun:
    """What :func:`run_scales` returns: the record, the live runs and per-subset accuracies."""

    record: ScaleResult
    runs: tuple[RobustnessRun, ...]

    def accuracy_rows(self) -> list[dict[str, Any]]:
        """Accuracy (%) per (dataset, attack, subset) on the attacked images."""
        return scale_accuracy_rows(self.record)

    def removal_rows(self) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, float]] = {}
        for e in self.record.evals:
            seen.setdefault(e.model.dataset, e.removal)
        return [{"dataset": d, "silenced": k, "accuracy": v} for d, r in seen.items() for k, v in r.items()]


def scale_accuracy_rows(record: ScaleResult) -> list[dict[str, Any]]:
    """Accuracy (%) per (dataset, backbone, attack, subset) of a per-scale record (live or archived),
    with ``task`` = "dataset · backbone" for faceting."""
    return [{"dataset": e.model.dataset, "backbone": e.model.backbone,
             "task": f"{e.model.dataset} · {e.model.backbone}", "attack": e.attack, "subset": s,
             "images": len(b), "accuracy": 100.0 * float(unbits(b).mean()) if b else float("nan")}
            for e in record.evals for s, b in e.subsets.items()]


def run_scales(params: ScaleParams, *, progress: bool = True) -> ScaleRun:
    """Attack the single-input TD model of each dataset, then perturb subsets of its inputs."""
    runs, evals = [], []
    for d in params.datasets:
        pm = provide(d, SCALE_BACKBONE[d], "td", params.common, pretrained=params.use_zoo,
                     require_zoo=params.pretrained is True, progress=progress)
        r = attack_model(pm, params.attacks, params.common, n_samples=params.n_images,
                         strict=params.n_samples is not None, reps=params.reps, progress=progress)
        removal = scale_removal(r.model, r.x, r.y)
        for attack, res in r.results.items():
            per = scale_perturbation(r.model, r.x, r.y, res)
            evals.append(ScaleEval(pm.ref, attack, r.images, {k: bits(v) for k, v in per.items()},
                                   removal))
        runs.append(r)
    return ScaleRun(ScaleResult(params.meta(), tuple(evals)), tuple(runs))


def example_images(runs: Sequence[RobustnessRun], attack: str, k: int = 6) -> dict[str, torch.Tensor]:
    """Rows "<model> original / adversarial / difference" of ``k`` successful examples per run."""
    rows: dict[str, torch.Tensor] = {}
    for r in runs:
        if attack not in r.results:
            continue
        ex = select_examples(r.results[attack], k, x=r.x)
        if len(ex["index"]):
            for part in ("original", "adversarial", "difference"):
                rows[f"{r.provided.ref.dataset} {r.label} {part}"] = ex[part]
    return rows
