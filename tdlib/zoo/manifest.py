"""The zoo's files: ``<zoo>/<name>.safetensors`` (tensors only, no pickle) and ``<name>.json``.

The manifest of a model records what it is (dataset, backbone, variant, seed), exactly how it was
trained (the tdlib config and its hash, epochs and LR schedule, the command, the tdlib commit, the
machine and the minutes it took), how good it is (test accuracy on the full official test set) and
the size and sha256 of its weights file. A weights file whose sha256 differs from its manifest is
refused.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tdlib.errors import CheckpointError
from tdlib.io import sha256_file, write_json

__all__ = ["ZOO_ENV", "ZooEntry", "ZooError", "read_entries", "read_entry", "sha256_file",
           "write_entry", "zoo_dir"]

ZOO_ENV = "TDLIB_ZOO"
MANIFEST_VERSION = 1


class ZooError(CheckpointError):
    """A zoo entry is missing, tampered with, or does not match its manifest."""


def zoo_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The zoo folder: ``path``, else ``$TDLIB_ZOO``, else ``weights/`` of this checkout."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(ZOO_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent.parent / "weights"


@dataclass(frozen=True)
class ZooEntry:
    """The manifest of one pretrained model."""

    name: str
    dataset: str
    backbone: str
    variant: str
    seed: int
    file: str
    bytes: int
    sha256: str
    test_accuracy: float  # % on the full official test set
    test_images: int
    val_accuracy: float
    predictions_sha256: str  # of the predicted labels on the test set, in test-set order
    config: dict[str, Any]
    config_hash: str
    recipe: dict[str, Any]
    command: str
    training: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    version: int = MANIFEST_VERSION
    #: per-image correctness on the test set ("0"/"1" per image, test-set order), where recorded:
    #: experiments read it instead of re-predicting; ``zoo verify`` recomputes and compares it
    correct: str = ""

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.dataset, self.backbone, self.variant, self.seed)

    def weights_path(self, root: Path) -> Path:
        return root / self.file

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _manifest_path(root: Path, name: str) -> Path:
    return root / f"{name}.json"


def read_entry(path: str | os.PathLike[str]) -> ZooEntry:
    """Read one manifest.

    Raises:
        ZooError: not JSON, or not a manifest of this version (names the file).
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        if data.get("version") != MANIFEST_VERSION:
            raise ValueError(f"manifest version {data.get('version')!r}, expected {MANIFEST_VERSION}")
        return ZooEntry(**data)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ZooError(f"zoo manifest {p} is unreadable ({exc}); restore it with "
                       f"`git checkout -- {p.name}` or retrain with `python -m tdlib zoo train`") from exc


def read_entries(root: str | os.PathLike[str] | None = None) -> list[ZooEntry]:
    """Every manifest in the zoo folder, sorted by name (an absent folder is an empty zoo)."""
    base = zoo_dir(root)
    if not base.is_dir():
        return []
    return sorted((read_entry(p) for p in base.glob("*.json")), key=lambda e: e.name)


def write_entry(entry: ZooEntry, root: str | os.PathLike[str] | None = None) -> Path:
    """Write a manifest (atomically)."""
    return write_json(_manifest_path(zoo_dir(root), entry.name), entry.to_json())
