"""Exp 1: train (or reuse) BU and TD models, evaluate them per image, compare them.

:func:`run` trains the grid of :class:`~tdlib.experiments.params.Exp1Params` at its profile and,
when asked, adds the zoo's claim-grade models evaluated on the full official test sets. It returns
an :class:`Exp1Run`: the frozen :class:`~tdlib.experiments.records.Exp1Result` (saved for the
Results page) and the live runs (for learning curves).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tdlib.bitstring import bits
from tdlib.config import DATASET_BACKBONES, run_config
from tdlib.experiments.paper import PAPER_CLEAN_ACCURACY
from tdlib.experiments.params import Exp1Params
from tdlib.experiments.records import AccuracyEval, Exp1Result, ModelRef
from tdlib.training import RunResult, fit_repetitions, get_dataset, mean_std, predict
from tdlib.zoo import evaluate_entry, read_entries

__all__ = ["Exp1Run", "accuracy_table", "history_rows", "run", "test_set_label", "zoo_table"]


@dataclass(frozen=True)
class Exp1Run:
    """What :func:`run` returns: the saved record and the live training runs."""

    record: Exp1Result
    runs: tuple[RunResult, ...]
    zoo_entries: tuple[Any, ...] = ()


def test_set_label(dataset: str, test_per_class: int | None, split_seed: int = 0) -> str:
    """How a test set is described in records (models are paired only on equal labels)."""
    if test_per_class is None:
        return f"{dataset} official test set"
    return f"{dataset} test, {test_per_class}/class, split seed {split_seed}"


def _eval_trained(r: RunResult) -> AccuracyEval:
    c = r.config
    data = get_dataset(c.data)
    pred = predict(r.model, data.test.images(), device=next(r.model.parameters()).device)
    correct = (pred == data.test.y).numpy()
    folder = Path(r.folder)
    ref = ModelRef(c.data.dataset, c.model.backbone, c.model.variant, r.seed, "trained",
                   f"{folder.parent.name}/{folder.name}", 100.0 * float(correct.mean()),
                   len(correct))
    return AccuracyEval(ref, test_set_label(c.data.dataset, c.data.test_per_class,
                                            c.data.split_seed),
                        bits(correct), 100.0 * r.val_accuracy, c.train.epochs,
                        float(sum(h["seconds"] for h in r.history)), r.params, r.macs)


def _eval_zoo(params: Exp1Params) -> tuple[list[AccuracyEval], list[Any]]:
    """Every zoo model of ``ZOO_DATASETS`` (all its variants: CIFAR-10's TD_uni is judged against
    BU too), evaluated on the full official test set."""
    evals, entries = [], []
    for e in read_entries():
        if e.dataset not in params.zoo_datasets:
            continue
        res = evaluate_entry(e, data_root=params.common.data_dir, runs_root=params.common.run_dir)
        ref = ModelRef(e.dataset, e.backbone, e.variant, e.seed, "zoo", e.name, res.accuracy, res.n)
        evals.append(AccuracyEval(ref, test_set_label(e.dataset, None), bits(res.correct),
                                  e.val_accuracy, int(e.recipe["epochs"]),
                                  float(e.training["seconds"])))
        entries.append(e)
    return evals, entries


def run(params: Exp1Params, *, progress: bool = True) -> Exp1Run:
    """Train or reuse every (dataset, backbone, variant) of the grid that the reference trains.

    Backbones the reference does not train on a dataset are skipped (e.g. ResNet32 on MNIST).
    """
    common = params.common
    runs: list[RunResult] = []
    for d, b, v in itertools.product(params.datasets, params.backbone_list, params.variants):
        if b not in DATASET_BACKBONES[d]:
            continue
        cfg = run_config(d, b, v, profile=common.profile, seed=common.seed,
                         repetitions=params.repetitions, root=common.data_dir)
        runs += fit_repetitions(cfg, runs_root=common.run_dir, device=common.device,
                                data=get_dataset(cfg.data), progress=progress)
    with torch.no_grad():
        evals = tuple(_eval_trained(r) for r in runs)
    zoo, entries = _eval_zoo(params) if params.show_zoo else ([], [])
    record = Exp1Result(params.meta(), evals, tuple(zoo))
    return Exp1Run(record, tuple(runs), tuple(entries))


def accuracy_table(evals: Sequence[AccuracyEval]) -> list[dict[str, Any]]:
    """One row per (source, dataset, backbone, variant): accuracy mean ± std (%) over
    repetitions, on which test set, cost, and the paper's clean accuracy where it gives one."""
    groups: dict[tuple[str, str, str, str, str], list[AccuracyEval]] = {}
    for e in evals:
        m = e.model
        groups.setdefault((m.source, m.dataset, m.backbone, m.variant, e.test_set), []).append(e)
    rows = []
    for (src, d, b, v, test_set), es in groups.items():
        mean, std = mean_std([e.accuracy for e in es])
        rows.append({
            "source": src, "dataset": d, "backbone": b, "variant": v, "models": len(es),
            "test_set": test_set, "test_images": es[0].model.test_images,
            "epochs": es[0].epochs, "test_acc_mean": mean, "test_acc_std": std,
            "val_acc_mean": mean_std([e.val_accuracy for e in es])[0],
            "params": es[0].params or None, "macs": es[0].macs or None,
            "train_minutes": sum(e.train_seconds for e in es) / 60.0 / len(es),
            "paper_clean_acc": PAPER_CLEAN_ACCURACY.get((d, b, v), math.nan),
        })
    return rows


def zoo_table(entries: Sequence[Any]) -> list[dict[str, Any]]:
    """Provenance of the zoo's models: accuracy, epochs against the paper's, minutes, machine."""
    return [{
        "model": e.name, "test_acc": e.test_accuracy, "test_images": e.test_images,
        "epochs": e.recipe["epochs"], "paper_epochs": e.recipe["paper_epochs"],
        "precision": e.recipe.get("precision", "fp32"),
        "lr_drops_after": e.recipe["lr_drops_after_epochs"], "train_images": e.recipe["train_images"],
        "minutes": e.training["minutes"], "machine": e.training["machine"],
        "commit": e.training["tdlib_commit"], "sha256": e.sha256[:12],
    } for e in entries]


def zoo_history_rows(entries: Sequence[Any]) -> list[dict[str, Any]]:
    """Per-epoch curves of zoo models as their manifests recorded them (long format, fractions):
    validation accuracy on the held-out 10% of training, and training accuracy on the augmented
    batches of that epoch."""
    return [{"dataset": e.dataset, "backbone": e.backbone, "variant": e.variant, "rep": e.seed,
             "epoch": h["epoch"], "val_accuracy": h["val_accuracy"],
             "train_accuracy": h.get("train_accuracy", float("nan"))}
            for e in entries for h in e.history]


def history_rows(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """Per-epoch learning curves of every run (long format, for plotting)."""
    rows = []
    for r in results:
        c = r.config
        for h in r.history:
            rows.append({"dataset": c.data.dataset, "backbone": c.model.backbone,
                         "variant": c.model.variant, "rep": r.rep, **h})
    return rows
