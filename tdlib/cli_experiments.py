"""The ``robustness`` and ``explain`` subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from tdlib.io import to_json


def cmd_robustness(a: argparse.Namespace) -> int:
    import sys

    from tdlib.config import get_profile, run_config
    from tdlib.experiments.robustness import attack_model

    prof = get_profile(a.profile)
    cfg = run_config(a.dataset, a.backbone, a.variant, profile=a.profile, epochs=a.epochs,
                     seed=a.seed, root=a.data_root)
    run = attack_model(
        cfg, a.attacks,
        n_samples=a.n_samples if a.n_samples is not None else prof.attack_samples,
        reps=a.reps if a.reps is not None else prof.attack_repetitions,
        protocol=a.protocol, seed=a.seed, device=a.device, runs_root=a.run_dir,
        progress=not a.json,
    )
    rows = run.summaries()
    if a.json:
        sys.stdout.write(to_json({"model": run.model_run.summary(), "attacks": rows,
                                  "results_dir": str(run.folder)}))
        return 0
    print(f"{run.label} on {a.dataset}: clean accuracy "
          f"{100 * run.model_run.test_accuracy:.2f}% (test set), {len(run.y)} attacked samples")
    print(f"{'attack':20s}{'success %':>10s}{'median L2':>11s}{'AUC':>8s}{'seconds':>9s}")
    for r in rows:
        print(f"{r['attack']:20s}{r['success_rate']:10.1f}{r['median_l2']:11.3f}{r['auc']:8.3f}"
              f"{r['seconds']:9.1f}")
    return 0


def cmd_explain(a: argparse.Namespace) -> int:
    import sys

    from tdlib.experiments.explain import aggregate_localisation, localisation_grid

    rows = localisation_grid(profile=a.profile, datasets=a.dataset, backbone=a.backbone,
                             variants=a.variant, n_images=a.n_images, seed=a.seed,
                             device=a.device, runs_root=a.run_dir, data_root=a.data_root,
                             progress=not a.json)
    agg = aggregate_localisation(rows)
    if a.json:
        sys.stdout.write(to_json({"per_model": rows, "aggregate": agg}))
        return 0
    print(f"{'dataset':15s}{'variant':8s}{'stage':8s}{'energy on object':>18s}{'pointing':>10s}")
    for r in agg:
        print(f"{r['dataset']:15s}{r['variant']:8s}{r['stage']:8s}{r['energy']:18.3f}"
              f"{r['pointing']:10.3f}")
    return 0


def add_experiment_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``robustness`` and ``explain`` on the CLI's subparsers."""
    p = sub.add_parser("robustness", help="attack a trained model (Exp 2): success rate, median L2")
    common(p)
    p.add_argument("--attacks", default="pointwise,additive_gaussian,gaussian_blur,spatial",
                   help="comma-separated attack names")
    p.add_argument("--n-samples", type=int, default=None, help="test images attacked")
    p.add_argument("--reps", type=int, default=None, help="repetitions per attack (paper: 3)")
    p.add_argument("--protocol", default="paper", help="paper (foolbox 2 semantics) or minimal")
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser("explain", help="Grad-CAM localisation scores per stage (Exp 3)")
    common(p)
    p.add_argument("--n-images", type=int, default=None)
    p.set_defaults(func=cmd_explain)
