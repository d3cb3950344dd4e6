"""Where data is read from and where caches go.

* Data root: the ``root`` argument, else ``$TDLIB_DATA``, else ``~/.cache/tdlib/data``. It may be
  read-only: tdlib never writes there.
* Cache: ``$TDLIB_CACHE``, else ``~/.cache/tdlib``. Downloads (when online) and decoded image
  caches go there.
* Offline: ``$TDLIB_OFFLINE=1`` (or ``DataConfig(download=False)``) never tries a download.

An environment variable set to the empty string counts as unset (as ``${VAR:-default}`` in a
shell), so ``TDLIB_CACHE=`` never means "the current directory".
"""

from __future__ import annotations

import os
from pathlib import Path

from tdlib.errors import DataError

DATA_ENV = "TDLIB_DATA"
CACHE_ENV = "TDLIB_CACHE"
OFFLINE_ENV = "TDLIB_OFFLINE"


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def cache_dir() -> Path:
    """Folder for downloads and decoded-image caches (created on demand by writers)."""
    return Path(_env(CACHE_ENV) or "~/.cache/tdlib").expanduser()


def offline() -> bool:
    """True when ``$TDLIB_OFFLINE`` is set to a true value."""
    return os.environ.get(OFFLINE_ENV, "").lower() in ("1", "true", "yes")


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the data root.

    An explicitly given root (argument or ``$TDLIB_DATA``) must be an existing folder; the
    default one may not exist yet (downloads then go to the cache). An empty root argument is
    refused (it would silently mean the current directory); an empty ``$TDLIB_DATA`` counts as
    unset.

    Raises:
        DataError: an explicit root that is empty, does not exist or is not a folder.
    """
    source = "root argument" if root is not None else f"${DATA_ENV}"
    explicit = root if root is not None else _env(DATA_ENV)
    if explicit is None:
        return cache_dir() / "data"
    fix = (f"point {DATA_ENV} (or DATA_DIR / --data-root) at a folder in torchvision's layout, "
           "e.g. one holding MNIST/raw, FashionMNIST/raw, cifar10-jpeg/, imagenette2-160/")
    if not str(explicit).strip():
        raise DataError(f"the data root (from the {source}) is an empty path; {fix}, or leave it "
                        "unset for the default")
    path = Path(explicit).expanduser()
    if path.exists() and not path.is_dir():
        raise DataError(f"data root {str(path)!r} (from the {source}) is a file, not a folder; {fix}")
    if not path.is_dir():
        raise DataError(f"data root {str(path)!r} (from the {source}) does not exist; {fix}")
    return path
