"""``archive list | run | pack | build | verify``: the results archive (attack results of the zoo)."""

from __future__ import annotations

import argparse
from typing import Any

from tdlib.archive.store import archive_dir, list_archives, manifest_summary
from tdlib.cli.common import names, path, positive_int, print_json


def _spec(a: argparse.Namespace) -> Any:
    # lazy: tdlib.archive.build imports torch; the CLI loads it only for the subcommand that needs it
    from tdlib.archive.build import ArchiveSpec

    kw: dict[str, Any] = {}
    if a.attacks is not None:
        kw["attacks"] = tuple(a.attacks)
    if a.whitebox is not None:
        kw["whitebox"] = tuple(w for w in a.whitebox if w != "none")
    return ArchiveSpec(a.dataset, a.backbone, tuple(a.variants), n_images=a.n_images, reps=a.reps,
                       protocol=a.protocol, seed=a.seed, **kw)


def cmd_list(a: argparse.Namespace) -> int:
    rows = [manifest_summary(n, a.archive_dir) for n in list_archives(a.archive_dir)]
    if a.json:
        print_json(rows)
        return 0
    print(f"archive {archive_dir(a.archive_dir)}: {len(rows)} archive(s)")
    for m in rows:
        print(f"{m['name']:48s} {len(m['variants'])} models x {len(m['attacks'])} attacks x "
              f"{m['n_images']} images, {m['cpu_hours']:.2f} CPU-h, {m['bytes'] / 1024:.0f} KB")
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    # lazy: tdlib.archive.build imports torch; the CLI loads it only for the subcommand that needs it
    from tdlib.archive.build import run_variant

    spec = _spec(a)
    for v in spec.variants:
        folder = run_variant(spec, v, runs_root=a.run_dir, device=a.device, progress=not a.json)
        print(f"[archive] {spec.name}: {v} done ({folder})")
    return 0


def cmd_pack(a: argparse.Namespace) -> int:
    # lazy: tdlib.archive.build imports torch; the CLI loads it only for the subcommand that needs it
    from tdlib.archive.build import pack

    path = pack(_spec(a), runs_root=a.run_dir, root=a.archive_dir)
    print(f"[archive] wrote {path}")
    return 0


def cmd_build(a: argparse.Namespace) -> int:
    return cmd_run(a) or cmd_pack(a)


def cmd_verify(a: argparse.Namespace) -> int:
    # lazy: tdlib.archive.verify imports torch; the CLI loads it only for the subcommand that needs it
    from tdlib.archive.verify import verify_archive

    todo = a.name or list_archives(a.archive_dir)
    if not todo:
        print("error: the archive folder holds no archive to verify")
        return 2
    out = []
    for n in todo:
        triples = verify_archive(n, sample=a.sample, seed=a.seed, root=a.archive_dir, device=a.device)
        out.append({"archive": n, "triples": [t.__dict__ for t in triples]})
        if not a.json:
            print(f"ok   {n}: {len(triples)} re-run triples give the archived distances: "
                  + ", ".join(f"{t.variant}/{t.attack} r{t.rep} #{t.position} L2 {t.rerun:.4g}"
                              for t in triples))
    if a.json:
        print_json(out)
    return 0


def register(sub: Any) -> None:
    ar = sub.add_parser("archive", help="the results archive: attack results of the zoo's models")
    asub = ar.add_subparsers(dest="archive_command", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--archive-dir", type=path, default=None,
                        help="archive folder (default archive/ or $TDLIB_ARCHIVE)")
    common.add_argument("--json", action="store_true")
    task = argparse.ArgumentParser(add_help=False)
    task.add_argument("--dataset", required=True)
    task.add_argument("--backbone", required=True)
    task.add_argument("--variants", type=names, default=["bu", "td"])
    task.add_argument("--attacks", type=names, default=None, help="default: the paper's ten")
    task.add_argument("--whitebox", type=names, default=None,
                      help="white-box minimal-L2 attacks (default l2_pgd = DDN; 'none' for none)")
    task.add_argument("--n-images", type=positive_int, default=1000)
    task.add_argument("--reps", type=positive_int, default=3)
    task.add_argument("--protocol", default="paper")
    task.add_argument("--seed", type=int, default=0)
    task.add_argument("--run-dir", type=path, default=None, help="root of the run folders")
    task.add_argument("--device", default="cpu")

    p = asub.add_parser("list", parents=[common], help="the archives and their manifests")
    p.set_defaults(func=cmd_list)
    p = asub.add_parser("run", parents=[common, task], help="attack the models (resumable)")
    p.set_defaults(func=cmd_run)
    p = asub.add_parser("pack", parents=[common, task], help="write the archive from finished runs")
    p.set_defaults(func=cmd_pack)
    p = asub.add_parser("build", parents=[common, task], help="run, then pack")
    p.set_defaults(func=cmd_build)
    p = asub.add_parser("verify", parents=[common],
                        help="re-run random (image, attack, repetition) triples; require the same distances")
    p.add_argument("name", nargs="*", help="archives to verify (default: all)")
    p.add_argument("--sample", type=positive_int, default=6, help="triples per archive")
    p.add_argument("--seed", type=int, default=None, help="seed of the sample (default: random)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_verify)
