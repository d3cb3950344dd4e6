"""Exp 1: train (or reuse) BU and TD variants and tabulate accuracy, params and MACs."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tdlib.config import DATASET_BACKBONES, as_tuple, run_config
from tdlib.errors import ConfigError
from tdlib.experiments.claims import PAPER_ACCURACY, accuracy_verdict
from tdlib.training import RunResult, fit_repetitions, get_dataset, mean_std


def run_grid(
    *,
    profile: str,
    datasets: Sequence[str] | str,
    backbones: Sequence[str] | str,
    variants: Sequence[str] | str,
    repetitions: int | None = None,
    seed: int = 0,
    epochs: int | None = None,
    device: str = "auto",
    runs_root: str | Path | None = None,
    data_root: str | None = None,
    progress: bool = True,
) -> list[RunResult]:
    """Every (dataset, backbone, variant) of the grid that the reference trains, all repetitions.

    Backbones the reference does not train on a dataset are skipped (e.g. ResNet32 on MNIST).

    Raises:
        ConfigError: no (dataset, backbone) pair of the grid is trained by the reference, or an
            invalid name/value.
    """
    ds, bbs, vs = as_tuple(datasets), as_tuple(backbones), as_tuple(variants)
    pairs = [(d, b) for d, b in itertools.product(ds, bbs) if b in DATASET_BACKBONES.get(d, ())]
    if not pairs:
        # validate names first so that a typo gets the unknown-name message
        for d, b, v in itertools.product(ds, bbs, vs):
            run_config(d, b, v, profile=profile)
        raise ConfigError(f"none of the backbones {bbs} is trained on datasets {ds}")
    results: list[RunResult] = []
    for (d, b), v in itertools.product(pairs, vs):
        cfg = run_config(d, b, v, profile=profile, seed=seed, repetitions=repetitions,
                         epochs=epochs, root=data_root)
        results += fit_repetitions(cfg, runs_root=runs_root, device=device,
                                   data=get_dataset(cfg.data), progress=progress)
    return results


def accuracy_rows(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """One row per (dataset, backbone, variant): accuracy mean ± std (%), cost, the paper's value."""
    groups: dict[tuple[str, str, str], list[RunResult]] = {}
    for r in results:
        c = r.config
        groups.setdefault((c.data.dataset, c.model.backbone, c.model.variant), []).append(r)
    rows = []
    for (d, b, v), rs in groups.items():
        mean, std = mean_std([100.0 * r.test_accuracy for r in rs])
        epochs = [h["seconds"] for r in rs for h in r.history]
        rows.append({
            "dataset": d, "backbone": b, "variant": v, "runs": len(rs),
            "epochs": rs[0].config.train.epochs, "test_acc_mean": mean, "test_acc_std": std,
            "val_acc_mean": mean_std([100.0 * r.val_accuracy for r in rs])[0],
            "params": rs[0].params, "macs": rs[0].macs,
            "sec_per_epoch": sum(epochs) / len(epochs) if epochs else math.nan,
            "paper_acc": PAPER_ACCURACY.get((d, b, v), math.nan),
        })
    return rows


def td_vs_bu(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each TD-family row, the gap to its BU and the verdict on "TD ≈ BU"."""
    bu = {(r["dataset"], r["backbone"]): r for r in rows if r["variant"] == "bu"}
    out = []
    for r in rows:
        base = bu.get((r["dataset"], r["backbone"]))
        if r["variant"] == "bu" or base is None:
            continue
        verdict = accuracy_verdict(base["test_acc_mean"], r["test_acc_mean"],
                                   base["test_acc_std"], r["test_acc_std"])
        gap = r["test_acc_mean"] - base["test_acc_mean"]
        out.append({
            "dataset": r["dataset"], "backbone": r["backbone"], "variant": r["variant"],
            "bu_acc": base["test_acc_mean"], "td_acc": r["test_acc_mean"], "gap": gap,
            "verdict": verdict,
            "sentence": (
                f"{r['backbone']} {r['variant'].upper()} on {r['dataset']}: "
                f"{r['test_acc_mean']:.2f}% vs BU {base['test_acc_mean']:.2f}% "
                f"({gap:+.2f} points, {r['runs']} run(s)): TD ≈ BU {verdict}."
            ),
        })
    return out


def history_rows(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """Per-epoch learning curves of every run (long format, for plotting)."""
    rows = []
    for r in results:
        c = r.config
        for h in r.history:
            rows.append({"dataset": c.data.dataset, "backbone": c.model.backbone,
                         "variant": c.model.variant, "rep": r.rep, **h})
    return rows
