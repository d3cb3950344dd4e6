"""Progress bars that suit where the code runs.

``TDLIB_PROGRESS`` chooses: ``auto`` (default; tqdm picks a notebook widget or a terminal bar),
``text`` (plain text bars with few updates; used when notebooks are executed for the book, whose
static HTML cannot show widgets) or ``off``.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def progress_bar(total: int | None, desc: str, *, enabled: bool = True, **kwargs: Any) -> Any:
    """A tqdm bar (or a no-op one when disabled)."""
    mode = os.environ.get("TDLIB_PROGRESS", "auto").lower()
    if not enabled or mode in ("off", "0", "false", "none"):
        from tqdm.std import tqdm as plain

        return plain(total=total, desc=desc, disable=True, **kwargs)
    if mode == "text":
        from tqdm.std import tqdm as plain

        return plain(total=total, desc=desc, file=sys.stdout, mininterval=15.0, ascii=True,
                     dynamic_ncols=False, ncols=100, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, **kwargs)
