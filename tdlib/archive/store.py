"""The results archive on disk: ``<archive>/<name>.npz`` (arrays, no pickle) + ``<name>.json``.

An archive keeps what the zoo's models were measured to do under attack, computed once by
:mod:`tdlib.archive.build` and shipped in the repository, so the book and the claims table rest on
1,000 attacked images without attacking them live. The manifest records everything that made the
numbers (the command, tdlib commit, every model's sha256, the image indices, seeds, protocol,
machine, threads, minutes) and the sha256 of the array file; :func:`read_archive` refuses a file
that does not match it.

Array keys: ``indices`` and ``labels`` (N,), the test-set positions and labels of the attacked
images; per variant ``<v>/clean_correct`` (N,); per variant and attack ``<v>/<attack>/l2``,
``<v>/<attack>/linf`` (R, N) float64 (0: the clean image is misclassified, inf: no adversarial
found) and ``<v>/<attack>/success`` (R, N) bool, one row per repetition. Where the TD model has a
multi-input copy, the per-scale study (supplement Fig 3): ``td/<attack>/scale/<subset>`` (N,) bool,
the TD model's correctness with the adversarial fed to that subset of its inputs (manifest
``scales``).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tdlib.errors import ResultsError
from tdlib.io import atomic_write_bytes, read_json, sha256_file, write_json

__all__ = ["ARCHIVE_ENV", "FORMAT", "Archive", "ArchiveError", "archive_dir", "list_archives",
           "read_archive", "write_archive"]

FORMAT = "tdlib-archive-v1"
ARCHIVE_ENV = "TDLIB_ARCHIVE"


class ArchiveError(ResultsError):
    """An archive is missing, damaged, does not match its manifest, or disagrees with a re-run."""


def archive_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """``root``, else ``$TDLIB_ARCHIVE``, else the checkout's ``archive/`` folder."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ARCHIVE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent.parent / "archive"


@dataclass(frozen=True)
class Archive:
    """One archive: its manifest and its arrays (read, checked)."""

    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def variants(self) -> list[str]:
        return list(self.manifest["variants"])

    @property
    def attacks(self) -> list[str]:
        return list(self.manifest["attacks"])

    def l2(self, variant: str, attack: str) -> np.ndarray:
        """(R, N) minimal L2 per repetition and image."""
        return self.arrays[f"{variant}/{attack}/l2"]

    def minimal_l2(self, variant: str, attack: str) -> np.ndarray:
        """(N,) the smallest L2 over the repetitions (as the paper merges its three runs)."""
        return np.asarray(self.l2(variant, attack).min(axis=0))


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def write_archive(name: str, manifest: dict[str, Any], arrays: dict[str, np.ndarray],
                  root: str | os.PathLike[str] | None = None) -> Path:
    """Write ``<name>.npz`` then its manifest (with the file's sha256 and size), atomically."""
    base = archive_dir(root)
    data = _npz_bytes(arrays)
    path = atomic_write_bytes(base / f"{name}.npz", data)
    full = {**manifest, "format": FORMAT, "name": name, "file": path.name, "bytes": len(data),
            "sha256": sha256_file(path), "keys": sorted(arrays)}
    write_json(base / f"{name}.json", full)
    return path


def list_archives(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the archives (manifests) in the archive folder."""
    base = archive_dir(root)
    return sorted(p.stem for p in base.glob("*.json")) if base.is_dir() else []


def read_archive(name: str, root: str | os.PathLike[str] | None = None) -> Archive:
    """Read and check one archive.

    Raises:
        ArchiveError: the manifest or the array file is missing or unreadable, the file's sha256
            or size differs from the manifest (modified or damaged), or keys are missing.
    """
    base = archive_dir(root)
    mpath = base / f"{name}.json"
    fix = f"restore it with `git checkout -- archive/{name}.*` or rebuild it with its command"
    if not mpath.is_file():
        raise ArchiveError(f"no archive {name!r} in {base} (archives: "
                           f"{', '.join(list_archives(root)) or 'none'})")
    try:
        manifest = read_json(mpath, expect=dict)
    except ResultsError as exc:
        raise ArchiveError(f"archive manifest {mpath} is damaged ({exc}); {fix}") from exc
    if manifest.get("format") != FORMAT:
        raise ArchiveError(f"{mpath} is not a {FORMAT} manifest (format {manifest.get('format')!r}); {fix}")
    path = base / str(manifest.get("file", f"{name}.npz"))
    if not path.is_file():
        raise ArchiveError(f"archive {name!r}: its array file {path} is missing; {fix}")
    digest = sha256_file(path)
    if digest != manifest.get("sha256") or path.stat().st_size != manifest.get("bytes"):
        raise ArchiveError(
            f"refusing archive {name!r}: {path.name} has sha256 {digest[:16]}… "
            f"({path.stat().st_size} bytes), its manifest records {str(manifest.get('sha256'))[:16]}… "
            f"({manifest.get('bytes')} bytes): the file was modified or damaged; {fix}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"archive {name!r}: {path} is unreadable ({exc}); {fix}") from exc
    missing = sorted(set(manifest.get("keys", [])) - set(arrays))
    if missing:
        raise ArchiveError(f"archive {name!r} lacks arrays {missing[:4]}; {fix}")
    return Archive(manifest, arrays)


def manifest_summary(name: str, root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The manifest alone (no array check), for listings."""
    return dict(json.loads((archive_dir(root) / f"{name}.json").read_text(encoding="utf-8")))
