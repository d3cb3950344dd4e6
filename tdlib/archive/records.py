"""Archives as experiment records: the claims table and the book read them like saved results."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from tdlib.archive.store import Archive, list_archives, read_archive
from tdlib.bitstring import bits
from tdlib.experiments.records import AttackEval, Exp2Result, ModelRef, ResultMeta, ScaleEval, ScaleResult

__all__ = ["archive_curves", "archive_records", "live_check", "to_record", "to_scale_record"]


def to_record(archive: Archive) -> Exp2Result:
    """The archive as an Exp 2 record (minimal L2 over the repetitions, per image)."""
    man = archive.manifest
    evals = []
    for v, m in man["models"].items():
        ref = ModelRef(man["dataset"], man["backbone"], v, 0, "zoo", m["entry"],
                       float(m["test_accuracy"]), int(m["test_images"]))
        for a in man["attacks"]:
            l2 = archive.minimal_l2(v, a)
            evals.append(AttackEval(ref, a, man["protocol"], man["images"],
                                    tuple(float(d) for d in l2),
                                    {"archive": archive.name, "reps": man["reps"][a],
                                     "seconds": man["seconds"][v][a]}))
    meta = ResultMeta("exp2", "archive", {"archive": archive.name, "command": man["command"]},
                      str(man["sha256"])[:10], str(man["created"]), str(man.get("tdlib_commit", "")))
    return Exp2Result(meta, tuple(evals))


def to_scale_record(archive: Archive) -> ScaleResult | None:
    """The archive's per-scale study as a record (``None`` when it has none): per paper attack,
    the TD model's correctness with each input subset perturbed, on the images it classifies
    correctly when clean (as the live study attacks only those)."""
    man = archive.manifest
    scales = man.get("scales")
    if not scales:
        return None
    v = scales["variant"]
    m = man["models"][v]
    ref = ModelRef(man["dataset"], man["backbone"], v, 0, "zoo", m["entry"],
                   float(m["test_accuracy"]), int(m["test_images"]))
    keep = np.asarray(archive.arrays[f"{v}/clean_correct"], dtype=bool)
    images = f"{man['images']}; the {int(keep.sum())} that {m['entry']} classifies correctly"
    evals = tuple(
        ScaleEval(ref, a, images,
                  {s: bits(np.asarray(archive.arrays[f"{v}/{a}/scale/{s}"], dtype=bool)[keep])
                   for s in scales["subsets"]},
                  dict(scales.get("silenced_accuracy", {})))
        for a in scales["attacks"])
    meta = ResultMeta("exp2_scales", "archive", {"archive": archive.name, "command": man["command"]},
                      str(man["sha256"])[:10], str(man["created"]), str(man.get("tdlib_commit", "")))
    return ScaleResult(meta, evals)


def archive_records(root: str | os.PathLike[str] | None = None) -> list[Exp2Result | ScaleResult]:
    """Every archive of the archive folder, checked, as records (its attacks, and its per-scale
    study where it has one).

    Raises:
        ArchiveError: an archive does not match its manifest.
    """
    out: list[Exp2Result | ScaleResult] = []
    for n in list_archives(root):
        archive = read_archive(n, root)
        out.append(to_record(archive))
        scale = to_scale_record(archive)
        if scale is not None:
            out.append(scale)
    return out


def live_check(runs: Sequence[Any], archives: Sequence[Archive], *, seed: int,
               protocol: str) -> list[dict[str, Any]]:
    """Compare a live Exp 2 run with the archive, image for image.

    A live run on the zoo's models attacks the first ``n`` images of the same seeded permutation
    that an archive attacked (its first ``n`` positions), with the same repetition seeds; its
    repetition 0 must give the archive's repetition-0 distances exactly.

    Returns:
        One row per (model, attack) that both cover: images compared and how many are identical.
    """
    rows = []
    for arc in archives:
        man = arc.manifest
        if man["protocol"] != protocol or int(man["seed"]) != seed:
            continue
        for r in runs:
            ref = r.provided.ref
            m = man["models"].get(ref.variant)
            if (ref.dataset, ref.backbone) != (man["dataset"], man["backbone"]) or m is None \
                    or ref.name != m["entry"]:
                continue
            for attack in r.results:
                if attack not in man["attacks"]:
                    continue
                live = np.asarray(r.rep_l2(attack, 0))
                n = min(len(live), int(man["n_images"]))
                kept = arc.l2(ref.variant, attack)[0, :n]
                same = int(np.sum((live[:n] == kept) | (np.isnan(live[:n]) & np.isnan(kept))))
                rows.append({"archive": arc.name, "dataset": ref.dataset, "backbone": ref.backbone,
                             "variant": ref.variant, "attack": attack, "images": n,
                             "identical": same, "all identical": same == n})
    return rows


def archive_curves(archive: Archive, *, points: int = 300) -> list[dict[str, Any]]:
    """The paper's accuracy-loss curves (minimal L2 over repetitions) of every model and attack,
    each thinned to at most ``points`` steps, for :func:`tdlib.plots.robustness_curves`."""
    # lazy: tdlib.attacks imports torch; the claims table (`tdlib claims`) reads archives without it
    from tdlib.attacks import accuracy_loss_curve

    man = archive.manifest
    rows = []
    for v in man["variants"]:
        for a in man["attacks"]:
            d, loss = accuracy_loss_curve(archive.minimal_l2(v, a), int(man["n_images"]))
            if len(d) > points:
                keep = np.unique(np.linspace(0, len(d) - 1, points).round().astype(int))
                d, loss = d[keep], loss[keep]
            rows += [{"dataset": man["dataset"], "backbone": man["backbone"], "variant": v,
                      "attack": a, "l2": float(x), "loss": float(y)} for x, y in zip(d, loss, strict=True)]
    return rows
