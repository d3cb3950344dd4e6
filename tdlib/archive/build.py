"""Computing an archive: the zoo's models of one task, attacked on the same test images.

``python -m tdlib archive run`` attacks each variant through :func:`tdlib.attacks.robustness_sweep`
(every (attack, repetition) saved as it finishes, so an interrupted run resumes; variants may run in
separate processes), and ``archive pack`` writes the archive once every variant is complete
(``archive build`` does both).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdlib.archive.store import ArchiveError, write_archive
from tdlib.attacks import AttackResult, robustness_sweep
from tdlib.attacks.result import minimal_over_repetitions
from tdlib.attacks.scales import SCALE_SUBSETS, scale_perturbation, scale_removal, supports_scales
from tdlib.attacks.sweep import rep_path, rep_seed
from tdlib.data import load_dataset
from tdlib.errors import ConfigError, check_name
from tdlib.io import default_runs_root, read_json, write_json
from tdlib.names import ATTACKS, PAPER_ATTACKS, WHITEBOX_ATTACKS
from tdlib.zoo import find_entry, load_entry
from tdlib.zoo.build import _git_commit, machine_description

__all__ = ["SCALE_VARIANT", "ArchiveSpec", "pack", "run_variant", "test_indices"]

#: The variant whose adversarials feed the per-scale study (the paper's single-input TD).
SCALE_VARIANT = "td"


@dataclass(frozen=True)
class ArchiveSpec:
    """What an archive attacks: one task's zoo models (seed 0), the same test images for all."""

    dataset: str
    backbone: str
    variants: tuple[str, ...] = ("bu", "td")
    attacks: tuple[str, ...] = PAPER_ATTACKS
    whitebox: tuple[str, ...] = ("l2_pgd",)
    n_images: int = 1000
    reps: int = 3
    whitebox_reps: int = 1
    protocol: str = "paper"
    seed: int = 0
    steps: int = 1000
    whitebox_steps: int = 100

    def __post_init__(self) -> None:
        for a in (*self.attacks, *self.whitebox):
            check_name("attack", a, ATTACKS)
        for a in self.whitebox:
            if a not in WHITEBOX_ATTACKS:
                raise ConfigError(f"{a!r} is not a white-box attack ({', '.join(WHITEBOX_ATTACKS)})")
        if self.n_images < 1 or self.reps < 1 or self.whitebox_reps < 1:
            raise ConfigError("n_images, reps and whitebox_reps must be >= 1")

    @property
    def name(self) -> str:
        return (f"exp2-{self.dataset}-{self.backbone}-{self.protocol}-n{self.n_images}"
                f"-r{self.reps}-s{self.seed}")

    def reps_of(self, attack: str) -> int:
        return self.whitebox_reps if attack in self.whitebox else self.reps

    def command(self) -> str:
        return (f"python -m tdlib archive build --dataset {self.dataset} --backbone {self.backbone} "
                f"--variants {','.join(self.variants)} --n-images {self.n_images} --reps {self.reps} "
                f"--protocol {self.protocol} --seed {self.seed}")


def test_indices(n_test: int, n: int, seed: int) -> np.ndarray:
    """The attacked test images: the first ``n`` of a seeded permutation (as the Exp 2 page)."""
    if n > n_test:
        raise ConfigError(f"asked for {n} test images but the test set holds {n_test}")
    perm = torch.randperm(n_test, generator=torch.Generator().manual_seed(seed))
    return perm[:n].numpy().astype(np.int64)


def _folder(spec: ArchiveSpec, variant: str, runs_root: str | os.PathLike[str] | None) -> Path:
    base = Path(runs_root).expanduser() if runs_root is not None else default_runs_root()
    return base / "archive" / spec.name / variant


def _model_and_images(spec: ArchiveSpec, variant: str, device: str = "cpu") -> tuple[Any, Any, Any, Any]:
    entry = find_entry(spec.dataset, spec.backbone, variant, 0)
    model = load_entry(entry, device=device)
    data = load_dataset(spec.dataset, test_per_class=None, train_per_class=1)
    idx = test_indices(len(data.test), spec.n_images, spec.seed)
    return entry, model, data.test.images(torch.from_numpy(idx)), data.test.y[torch.from_numpy(idx)]


def run_variant(spec: ArchiveSpec, variant: str, *, runs_root: str | os.PathLike[str] | None = None,
                device: str = "cpu", batch_size: int = 128, progress: bool = True) -> Path:
    """Attack one variant's zoo model with every attack (resumable); return its folder."""
    commit = _git_commit()  # the code that attacks (a later pack may run at another commit)
    entry, model, x, y = _model_and_images(spec, variant, device)
    folder = _folder(spec, variant, runs_root)
    groups = [(list(spec.attacks), spec.reps, spec.steps)] + \
             ([(list(spec.whitebox), spec.whitebox_reps, spec.whitebox_steps)] if spec.whitebox else [])
    for attacks, reps, steps in groups:
        robustness_sweep(model, x, y, attacks, out_dir=folder, reps=reps, protocol=spec.protocol,
                         seed=spec.seed, batch_size=batch_size, device=device, steps=steps,
                         whitebox_steps=spec.whitebox_steps, progress=progress)
    write_json(folder / "run.json", {"entry": entry.name, "sha256": entry.sha256,
                                     "threads": torch.get_num_threads(), "device": str(device),
                                     "batch_size": batch_size, "tdlib_commit": commit})
    return folder


def _load_rep(path: Path) -> tuple[dict[str, Any], float]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["result"], float(state.get("seconds", float("nan")))


def _scale_arrays(spec: ArchiveSpec, variant: str, folder: Path) -> tuple[dict[str, np.ndarray],
                                                                          dict[str, Any]]:
    """The per-scale study (supplement Fig 3) from the adversarials the run kept: per paper attack,
    the images (minimal adversarial over the repetitions, as the paper merges them) fed to each
    subset of the TD model's inputs, and its accuracy with each side branch silenced.

    Returns ``({"<v>/<attack>/scale/<subset>": (N,) bool}, manifest part)``, empty for a model
    without a multi-input copy.
    """
    entry, model, x, y = _model_and_images(spec, variant)
    if not supports_scales(model):
        return {}, {}
    arrays: dict[str, np.ndarray] = {}
    for a in spec.attacks:
        results = [AttackResult.from_state(_load_rep(rep_path(folder, a, r))[0])
                   for r in range(spec.reps_of(a))]
        per = scale_perturbation(model, x, y, minimal_over_repetitions(results))
        for subset, ok in per.items():
            arrays[f"{variant}/{a}/scale/{subset}"] = ok.numpy().astype(bool)
    part = {"variant": variant, "attacks": list(spec.attacks), "subsets": ["clean", *SCALE_SUBSETS],
            "model": entry.name, "silenced_accuracy": {k: round(v, 2) for k, v in scale_removal(model, x, y).items()},
            "merge": "minimal L2 over the repetitions, then the adversarial (clean where it failed) "
                     "fed to the subset's inputs and the clean image to the others"}
    return arrays, part


def pack(spec: ArchiveSpec, *, runs_root: str | os.PathLike[str] | None = None,
         root: str | os.PathLike[str] | None = None) -> Path:
    """Write the archive of ``spec`` from its finished runs.

    Raises:
        ArchiveError: a variant's run is incomplete (the message says which attack to run).
    """
    arrays: dict[str, np.ndarray] = {}
    models: dict[str, Any] = {}
    seconds: dict[str, dict[str, float]] = {}
    n_test = None
    for v in spec.variants:
        entry = find_entry(spec.dataset, spec.backbone, v, 0)
        models[v] = {"entry": entry.name, "sha256": entry.sha256, "test_accuracy": entry.test_accuracy,
                     "test_images": entry.test_images}
        n_test = entry.test_images
        folder = _folder(spec, v, runs_root)
        run = read_json(folder / "run.json", expect=dict) if (folder / "run.json").is_file() else {}
        if run and run.get("sha256") != entry.sha256:
            raise ArchiveError(f"archive {spec.name}: {v} was attacked with model {run.get('sha256')}, "
                               f"the zoo now holds {entry.sha256}: rerun `archive run` in a new runs folder")
        models[v]["threads"] = run.get("threads")
        models[v]["tdlib_commit"] = run.get("tdlib_commit")  # where the attacks ran (pack: below)
        # the attack batch: a white-box attack's rounding depends on it (archive verify re-runs it)
        models[v]["batch_size"] = int(run.get("batch_size", 128))
        seconds[v] = {}
        for a in (*spec.attacks, *spec.whitebox):
            rows: dict[str, list[np.ndarray]] = {"l2": [], "linf": [], "success": []}
            secs = 0.0
            for r in range(spec.reps_of(a)):
                path = rep_path(folder, a, r)
                if not path.is_file():
                    raise ArchiveError(f"archive {spec.name}: {v}/{a} repetition {r} is not computed "
                                       f"({path}); run `python -m tdlib archive run` for it first")
                res, s = _load_rep(path)
                secs += s
                for k in rows:
                    rows[k].append(res[k].numpy())
                arrays[f"{v}/clean_correct"] = res["clean_correct"].numpy()
            arrays[f"{v}/{a}/l2"] = np.stack(rows["l2"]).astype(np.float64)
            arrays[f"{v}/{a}/linf"] = np.stack(rows["linf"]).astype(np.float64)
            arrays[f"{v}/{a}/success"] = np.stack(rows["success"]).astype(bool)
            seconds[v][a] = round(secs, 2)
    assert n_test is not None
    scales: dict[str, Any] = {}
    if SCALE_VARIANT in spec.variants:
        extra, scales = _scale_arrays(spec, SCALE_VARIANT, _folder(spec, SCALE_VARIANT, runs_root))
        arrays.update(extra)
    idx = test_indices(n_test, spec.n_images, spec.seed)
    arrays["indices"] = idx
    arrays["labels"] = load_dataset(spec.dataset, test_per_class=None, train_per_class=1).test.y.numpy()[idx]
    wall = sum(s for v in seconds.values() for s in v.values())
    cpu = sum(s * (models[v].get("threads") or 1) for v in seconds for s in seconds[v].values())
    manifest = {
        "experiment": "exp2", "dataset": spec.dataset, "backbone": spec.backbone,
        "variants": list(spec.variants), "attacks": [*spec.attacks, *spec.whitebox],
        "paper_attacks": list(spec.attacks), "whitebox": list(spec.whitebox),
        "reps": {a: spec.reps_of(a) for a in (*spec.attacks, *spec.whitebox)},
        "protocol": spec.protocol, "seed": spec.seed,
        "repetition_seeds": {a: [rep_seed(spec.seed, a, r) for r in range(spec.reps_of(a))]
                             for a in (*spec.attacks, *spec.whitebox)},
        "steps": spec.steps, "whitebox_steps": spec.whitebox_steps, "n_images": spec.n_images,
        "images": f"{spec.dataset} official test set, first {spec.n_images} of permutation seed "
                  f"{spec.seed} (indices in the array file)",
        "models": models, "command": spec.command(), "tdlib_commit": _git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_description(),
        "threads": {v: models[v].get("threads") for v in spec.variants},
        "seconds": seconds, "cpu_hours": round(cpu / 3600.0, 3), "wall_hours": round(wall / 3600.0, 3),
        **({"scales": scales} if scales else {}),
    }
    return write_archive(spec.name, manifest, arrays, root)


def spec_from_manifest(manifest: dict[str, Any]) -> ArchiveSpec:
    """The spec that built an archive."""
    reps = manifest["reps"]
    paper = tuple(manifest["paper_attacks"])
    white = tuple(manifest["whitebox"])
    return ArchiveSpec(manifest["dataset"], manifest["backbone"], tuple(manifest["variants"]), paper,
                       white, int(manifest["n_images"]), int(reps[paper[0]]) if paper else 1,
                       int(reps[white[0]]) if white else 1, manifest["protocol"],
                       int(manifest["seed"]), int(manifest["steps"]), int(manifest["whitebox_steps"]))
