"""Every verdict of a profile: all saved results merged into one claims table.

This is what the Results page and ``python -m tdlib claims`` show: each saved result
(:func:`tdlib.experiments.store.load_results`) contributes its claim rows, :func:`merge_rows`
keeps the best evidence per (claim, scope), and claims that no result covers say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tdlib.archive.records import archive_records
from tdlib.config import get_profile
from tdlib.experiments.claims import ClaimRow, merge_rows, missing_rows
from tdlib.experiments.records import all_claim_rows
from tdlib.experiments.store import load_results

__all__ = ["profile_claims"]


def profile_claims(profile: str, runs_root: str | Path | None = None) -> tuple[list[ClaimRow], list[Any]]:
    """(claim rows, the records they come from) for ``profile``: its saved results, and for a
    profile that takes its models from the zoo (``quick``) every archive (:mod:`tdlib.archive`).

    Raises:
        ResultsError: a saved result is damaged (the message names the file).
    """
    records: list[Any] = load_results(profile, runs_root)
    if get_profile(profile).pretrained:  # the archive measures the zoo's models, as this profile uses
        records += archive_records()
    rows = merge_rows(all_claim_rows(records))
    return rows + missing_rows(rows), records
