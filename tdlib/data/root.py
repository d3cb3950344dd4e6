"""Where data is read from and where caches go.

* Data root: the ``root`` argument, else ``$TDLIB_DATA``, else ``~/.cache/tdlib/data``. It may be
  read-only: tdlib never writes there.
* Cache: ``$TDLIB_CACHE``, else ``~/.cache/tdlib``. Downloads (when online) and decoded image
  caches go there.
* Offline: ``$TDLIB_OFFLINE=1`` (or ``DataConfig(download=False)``) never tries a download.
"""

from __future__ import annotations

import os
from pathlib import Path

from tdlib.errors import DataError

DATA_ENV = "TDLIB_DATA"
CACHE_ENV = "TDLIB_CACHE"
OFFLINE_ENV = "TDLIB_OFFLINE"


def cache_dir() -> Path:
    """Folder for downloads and decoded-image caches (created on demand by writers)."""
    return Path(os.environ.get(CACHE_ENV, "~/.cache/tdlib")).expanduser()


def offline() -> bool:
    """True when ``$TDLIB_OFFLINE`` is set to a true value."""
    return os.environ.get(OFFLINE_ENV, "").lower() in ("1", "true", "yes")


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the data root.

    An explicitly given root (argument or ``$TDLIB_DATA``) must exist; the default one may not
    exist yet (downloads then go to the cache).

    Raises:
        DataError: an explicit root that does not exist.
    """
    explicit = root if root is not None else os.environ.get(DATA_ENV)
    if explicit is None:
        return cache_dir() / "data"
    path = Path(explicit).expanduser()
    if not path.is_dir():
        source = "root argument" if root is not None else f"${DATA_ENV}"
        raise DataError(
            f"data root {str(path)!r} (from the {source}) does not exist; point {DATA_ENV} (or "
            "DATA_DIR / --data-root) at a folder in torchvision's layout, e.g. one holding "
            "MNIST/raw, FashionMNIST/raw, cifar10/*.npz, imagenette2-160/"
        )
    return path
