"""``archive verify``: re-run a random sample of (image, attack, repetition) triples and require
the archived distances, bit for bit.

Each attack keys its random draws by the image's position in the attacked set and by the
repetition's seed, so one image re-attacked alone reproduces its archived result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tdlib.archive.build import spec_from_manifest, test_indices
from tdlib.archive.store import Archive, ArchiveError, read_archive
from tdlib.attacks import run_attack
from tdlib.attacks.registry import WHITEBOX_ATTACKS
from tdlib.attacks.scales import scale_perturbation
from tdlib.attacks.sweep import rep_seed
from tdlib.data import load_dataset
from tdlib.errors import UnknownNameError
from tdlib.zoo import find_entry, load_entry

__all__ = ["Triple", "check_models", "verify_archive"]


@dataclass(frozen=True)
class Triple:
    """One re-run: variant, attack, repetition, the image's position, archived and new L2."""

    variant: str
    attack: str
    rep: int
    position: int
    archived: float
    rerun: float
    #: the per-scale bits of this image recomputed from the re-run adversarial equal the archived
    #: ones (None: not checked, the triple is not the per-scale study's or its attack has several
    #: repetitions, whose minimum a single re-run cannot give)
    scales_same: bool | None = None

    @property
    def same(self) -> bool:
        l2_same = self.archived == self.rerun or (np.isnan(self.archived) and np.isnan(self.rerun))
        return l2_same and self.scales_same is not False


def check_models(archive: Archive) -> dict[str, Any]:
    """The zoo models the archive names, checked against their recorded sha256.

    Raises:
        ArchiveError: the zoo lacks a model, or holds another file under its name.
    """
    out = {}
    for v, m in archive.manifest["models"].items():
        try:
            entry = find_entry(archive.manifest["dataset"], archive.manifest["backbone"], v, 0)
        except UnknownNameError as exc:
            raise ArchiveError(f"archive {archive.name}: {exc}") from exc
        if entry.sha256 != m["sha256"]:
            raise ArchiveError(f"archive {archive.name} was computed with {m['entry']} sha256 "
                               f"{m['sha256'][:16]}…, the zoo now holds {entry.sha256[:16]}…: "
                               "rebuild the archive with its command")
        out[v] = load_entry(entry)
    return out


def verify_archive(name: str, *, sample: int = 6, seed: int | None = None,
                   root: str | os.PathLike[str] | None = None, device: str = "cpu") -> list[Triple]:
    """Re-run ``sample`` random triples of archive ``name`` and compare.

    Raises:
        ArchiveError: the archive does not match its manifest, its models changed, the indices or
            labels disagree with the test set, or a re-run distance differs (the message lists
            every mismatch).
    """
    archive = read_archive(name, root)
    man = archive.manifest
    spec = spec_from_manifest(man)
    models = check_models(archive)
    data = load_dataset(spec.dataset, test_per_class=None, train_per_class=1)
    idx = test_indices(len(data.test), spec.n_images, spec.seed)
    if not np.array_equal(idx, archive.arrays["indices"]) or not np.array_equal(
            data.test.y.numpy()[idx], archive.arrays["labels"]):
        raise ArchiveError(f"archive {name}: its image indices or labels disagree with the test set "
                           "(another split or data version); rebuild it")
    rng = np.random.default_rng(seed if seed is not None else int.from_bytes(os.urandom(4), "little"))
    triples: list[Triple] = []
    for _ in range(sample):
        v = str(rng.choice(spec.variants))
        a = str(rng.choice(man["attacks"]))
        r = int(rng.integers(man["reps"][a]))
        pos = int(rng.integers(spec.n_images))
        # a decision attack keys its draws by position and queries in fixed-size buckets, so the
        # image alone reproduces it; a gradient attack's float rounding depends on the batch it
        # ran in (the batched convolutions), so its whole batch of the archive run is re-run
        lo, hi = pos, pos + 1
        batch = int(man["models"][v].get("batch_size", 128))
        if a in WHITEBOX_ATTACKS:
            lo = pos - pos % batch
            hi = min(lo + batch, spec.n_images)
        sel = torch.from_numpy(idx[lo:hi])
        x, y = data.test.images(sel), data.test.y[sel]
        steps = spec.whitebox_steps if a in spec.whitebox else spec.steps
        res = run_attack(models[v].to(device), x, y, a, protocol=spec.protocol,
                         seed=rep_seed(spec.seed, a, r), device=device, steps=steps,
                         indices=torch.arange(lo, hi), batch_size=batch)
        res = res.select(torch.tensor([pos - lo]))
        x, y = x[pos - lo : pos - lo + 1], y[pos - lo : pos - lo + 1]
        scales = man.get("scales") or {}
        scales_same = None
        if v == scales.get("variant") and a in scales.get("attacks", ()) and man["reps"][a] == 1:
            per = scale_perturbation(models[v].to(device), x, y, res)
            scales_same = all(bool(per[s][0]) == bool(archive.arrays[f"{v}/{a}/scale/{s}"][pos])
                              for s in scales["subsets"])
        triples.append(Triple(v, a, r, pos, float(archive.l2(v, a)[r, pos]), float(res.l2[0]),
                              scales_same))
    bad = [t for t in triples if not t.same]
    if bad:
        raise ArchiveError(f"archive {name}: {len(bad)} of {len(triples)} re-run triples differ: "
                           + "; ".join(f"{t.variant}/{t.attack} rep {t.rep} image {t.position}: "
                                       f"archived {t.archived!r}, re-run {t.rerun!r}"
                                       + (", per-scale bits differ" if t.scales_same is False else "")
                                       for t in bad))
    return triples
