"""Every verdict of a profile: all saved results merged into one claims table.

This is what the Results page and ``python -m tdlib claims`` show: each saved result
(:func:`tdlib.experiments.store.load_results`) contributes its claim rows, :func:`merge_rows`
keeps the best evidence per (claim, scope), and claims that no result covers say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tdlib.experiments.claims import ClaimRow, merge_rows, missing_rows
from tdlib.experiments.records import all_claim_rows
from tdlib.experiments.store import load_results

__all__ = ["profile_claims"]


def profile_claims(profile: str, runs_root: str | Path | None = None) -> tuple[list[ClaimRow], list[Any]]:
    """(claim rows, the records they come from) for ``profile``.

    Raises:
        ResultsError: a saved result is damaged (the message names the file).
    """
    records = load_results(profile, runs_root)
    rows = merge_rows(all_claim_rows(records))
    return rows + missing_rows(rows), records
