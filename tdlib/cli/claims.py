"""``claims``: every verdict of a profile, from the results saved in a runs folder."""

from __future__ import annotations

import argparse
from typing import Any

from tdlib.cli.common import path, print_json
from tdlib.config import get_profile
from tdlib.experiments.claims import claims_markdown
from tdlib.experiments.verdicts import profile_claims


def cmd_claims(a: argparse.Namespace) -> int:
    get_profile(a.profile)
    rows, records = profile_claims(a.profile, a.run_dir)
    if a.json:
        print_json({"profile": a.profile, "results": [r.meta.id for r in records],
                    "rows": [r.to_json() for r in rows]})
        return 0
    print(f"profile {a.profile}: {len(records)} saved result(s)"
          + (": " + ", ".join(r.meta.id for r in records) if records else ""))
    print(claims_markdown(rows))
    for r in rows:
        print(f"- {r.claim} [{r.scope}] {r.verdict}: {r.reason}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("claims", help="the claims table of a profile (verdicts with 95%% intervals)")
    p.add_argument("--profile", default="quick", help="smoke, quick (default) or paper")
    p.add_argument("--runs-dir", "--run-dir", dest="run_dir", type=path, default=None,
                   help="root of the run folders (default $TDLIB_RUNS or ./runs)")
    p.add_argument("--json", action="store_true", help="rows with claim, verdict, effect, ci, n, runs, reason")
    p.set_defaults(func=cmd_claims)
