"""Command line: ``python -m tdlib {models,train,robustness,explain,sweep}``.

Every user error (bad name, bad value, missing data, mismatched checkpoint) prints one line
``error: ...`` and exits with status 2; nothing is written before the inputs are validated.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from tdlib.errors import TdlibError


def _print_json(obj: Any) -> None:
    from tdlib.io import to_json

    sys.stdout.write(to_json(obj))


def _common_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="mnist, fashion_mnist, cifar10, cifar10_aug, imagenette")
    p.add_argument("--backbone", required=True, help="lenetfc, nin_light, nin, resnet32, resnet18_half")
    p.add_argument("--variant", default="td", help="bu, td, td_uni, td_rev (default td)")
    p.add_argument("--profile", default="quick", help="smoke, quick, paper (default quick)")
    p.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", default=None, help="root of run folders (default $TDLIB_RUNS or ./runs)")
    p.add_argument("--data-root", default=None, help="data root (default $TDLIB_DATA)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _run_config(a: argparse.Namespace, repetitions: int | None = None) -> Any:
    from tdlib.config import run_config

    return run_config(a.dataset, a.backbone, a.variant, profile=a.profile, epochs=a.epochs,
                      seed=a.seed, root=a.data_root, repetitions=repetitions)


def cmd_models(a: argparse.Namespace) -> int:
    from tdlib.models import summarize_all

    rows = summarize_all()
    if a.json:
        _print_json(rows)
        return 0
    print(f"{'backbone':15s}{'variant':8s}{'params':>12s}{'MACs':>16s}  input        final map")
    for r in rows:
        print(f"{r['backbone']:15s}{r['variant']:8s}{r['params']:12,d}{r['macs']:16,d}  "
              f"{'x'.join(map(str, r['input_shape'])):12s} {'x'.join(map(str, r['final_feature_map']))}")
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    from tdlib.training import fit_or_load, mean_std

    cfg = _run_config(a, repetitions=a.repetitions)
    results = [
        fit_or_load(cfg, rep=r, runs_root=a.run_dir, device=a.device, progress=not a.json)
        for r in range(cfg.train.repetitions)
    ]
    summaries = [r.summary() for r in results]
    out = dict(summaries[0]) if len(summaries) == 1 else {
        "runs": summaries,
        **{k: summaries[0][k] for k in ("dataset", "backbone", "variant", "epochs", "params", "macs")},
    }
    if len(summaries) > 1:
        accs = [s["test_accuracy"] for s in summaries]
        out["test_accuracy"], out["test_accuracy_std"] = mean_std(accs)
        out["val_accuracy"] = mean_std([s["val_accuracy"] for s in summaries])[0]
        out["seconds"] = sum(s["seconds"] for s in summaries)
    if a.json:
        _print_json(out)
    else:
        print(f"{cfg.data.dataset} {cfg.model.backbone}/{cfg.model.variant}: test accuracy "
              f"{out['test_accuracy']:.4f}, val {out['val_accuracy']:.4f}, "
              f"{out['seconds']:.1f} s, {out['params']:,} params, {out['macs']:,} MACs")
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    from tdlib import sweep

    jobs = sweep.select(
        sweep.build_grid(a.profile, runs_root=a.run_dir, data_dir=a.data_root, device=a.device),
        a.only, a.shard,
    )
    if a.list:
        _print_json(sweep.describe(jobs))
        return 0
    records = sweep.run_sweep(jobs, parallel=a.parallel, force=a.force)
    if a.json:
        _print_json(records)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tdlib",
        description="Top-Down Networks (Lelekas et al., CVPRW 2020): models, training, "
        "robustness, explanations and the experiment sweep.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="params, MACs, input and final feature-map size of every model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train", help="train (or resume, or reuse) BU/TD models (Exp 1)")
    _common_run_args(p)
    p.add_argument("--repetitions", type=int, default=1,
                   help="repetitions with seeds seed..seed+R-1 (default 1)")
    p.set_defaults(func=cmd_train)

    from tdlib.cli_experiments import add_experiment_commands

    add_experiment_commands(sub, _common_run_args)

    p = sub.add_parser("sweep", help="run the whole experiment grid (every notebook) via papermill")
    p.add_argument("--profile", default="quick", help="smoke, quick, paper (default quick)")
    p.add_argument("--only", default=None, help="comma-separated globs on job names, e.g. '01_*'")
    p.add_argument("--shard", default=None, help="'i/n': run every n-th job starting at i")
    p.add_argument("--parallel", type=int, default=1, help="notebooks executed at once")
    p.add_argument("--force", action="store_true", help="re-execute finished jobs")
    p.add_argument("--list", action="store_true", help="list the jobs and their state, run nothing")
    p.add_argument("--run-dir", default=None)
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sweep)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except TdlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished epochs/attacks are saved; rerun the same command to resume",
              file=sys.stderr)
        return 130


