"""``zoo list | verify | train``: the pretrained models."""

from __future__ import annotations

import argparse
from typing import Any

from tdlib.cli.common import path, print_json


def cmd_list(a: argparse.Namespace) -> int:
    # lazy: tdlib.zoo imports torch; the CLI loads it only for the subcommand that needs it
    from tdlib.zoo import read_entries, zoo_dir

    entries = read_entries(a.zoo_dir)
    if a.json:
        print_json([e.to_json() for e in entries])
        return 0
    print(f"zoo {zoo_dir(a.zoo_dir)}: {len(entries)} model(s)")
    print(f"{'model':32s}{'test acc %':>11s}{'epochs':>8s}{'paper':>7s}{'minutes':>9s}{'KB':>7s}")
    for e in entries:
        print(f"{e.name:32s}{e.test_accuracy:11.2f}{e.recipe['epochs']:8d}{e.recipe['paper_epochs']:7d}"
              f"{e.training['minutes']:9.1f}{e.bytes / 1024:7.0f}  {e.recipe.get('precision', 'fp32')}")
    return 0


def cmd_verify(a: argparse.Namespace) -> int:
    # lazy: tdlib.zoo imports torch; the CLI loads it only for the subcommand that needs it
    from tdlib.zoo import verify

    rows = verify(root=a.zoo_dir, data_root=a.data_root, only=a.only, device=a.device)
    if a.json:
        print_json(rows)
    else:
        for r in rows:
            acc = f"{r['accuracy']:.2f}%" if "accuracy" in r else "–"
            print(f"{'ok  ' if r['ok'] else 'FAIL'} {r['entry']:32s} {acc:>8s} (manifest "
                  f"{r['manifest_accuracy']:.2f}% on {r['test_images']:,} images): {r['reason']}")
        print(f"{sum(r['ok'] for r in rows)} of {len(rows)} entries verified")
    if not rows:
        print("error: the zoo holds no model to verify", flush=True)
        return 2
    return 0 if all(r["ok"] for r in rows) else 1


def cmd_train(a: argparse.Namespace) -> int:
    # lazy: tdlib.zoo imports torch; the CLI loads it only for the subcommand that needs it
    from tdlib.zoo.build import train_entries

    entries = train_entries(only=a.only, runs_root=a.run_dir, root=a.zoo_dir, data_root=a.data_root,
                            device=a.device, progress=not a.json,
                            log=(lambda _m: None) if a.json else print)
    if a.json:
        print_json([e.to_json() for e in entries])
    return 0


def register(sub: Any) -> None:
    zoo = sub.add_parser("zoo", help="pretrained models: list, verify, (re)train")
    zsub = zoo.add_subparsers(dest="zoo_command", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--zoo-dir", type=path, default=None, help="zoo folder (default weights/ or $TDLIB_ZOO)")
    common.add_argument("--json", action="store_true")

    p = zsub.add_parser("list", parents=[common], help="the zoo's models and their manifests")
    p.set_defaults(func=cmd_list)

    p = zsub.add_parser("verify", parents=[common],
                        help="check sha256 and recompute each model's full-test-set accuracy")
    p.add_argument("--only", default=None, help="comma-separated globs on entry names")
    p.add_argument("--data-root", type=path, default=None)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_verify)

    p = zsub.add_parser("train", parents=[common],
                        help="(re)train entries with their recorded recipe (resumable) and export them")
    p.add_argument("--only", default=None, help="comma-separated globs on entry names")
    p.add_argument("--run-dir", type=path, default=None, help="root of the training run folders")
    p.add_argument("--data-root", type=path, default=None)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_train)
