"""(Re)training the zoo's models with their recorded recipe and exporting them.

``python -m tdlib zoo train [--only PATTERN]`` trains each plan entry through
:func:`tdlib.training.fit_or_load` (checkpointed every epoch: an interrupted run resumes, a finished
one is reused) and exports it: tensors to ``<name>.safetensors``, facts to ``<name>.json``.
"""

from __future__ import annotations

import fnmatch
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from tdlib.bitstring import bits
from tdlib.config import config_hash, run_config, to_dict
from tdlib.errors import ConfigError
from tdlib.io import atomic_write_bytes, read_json, utc_now, write_json
from tdlib.training import fit_or_load, get_dataset, run_folder
from tdlib.zoo.manifest import ZooEntry, ZooError, read_entry, sha256_file, write_entry, zoo_dir
from tdlib.zoo.plan import ZOO_PLAN, PlanEntry
from tdlib.zoo.registry import evaluate_entry

__all__ = ["PROVENANCE_FILE", "export_run", "machine_description", "select_plan", "train_entries"]

PROVENANCE_FILE = "provenance.json"


def machine_description() -> str:
    """CPU model and core count (or the GPU), for the manifests."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical cores"


def _git_commit() -> str:
    """The checkout's short commit, ``+dirty`` when anything under ``tdlib/`` differs from it."""
    here = Path(__file__).resolve().parents[1]  # the package, not only tdlib/zoo
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def select_plan(only: str | None = None) -> list[PlanEntry]:
    """Plan entries whose name matches one of the comma-separated globs in ``only``.

    Raises:
        ConfigError: ``only`` matches no entry (the message lists them).
    """
    if not only:
        return list(ZOO_PLAN)
    pats = [p.strip() for p in only.split(",") if p.strip()]
    out = [e for e in ZOO_PLAN if any(fnmatch.fnmatch(e.name, p) for p in pats)]
    if not out:
        raise ConfigError(f"--only {only!r} matches no zoo entry; entries: "
                          + ", ".join(e.name for e in ZOO_PLAN))
    return out


def export_run(plan: PlanEntry, run: Any, *, root: str | os.PathLike[str] | None = None,
               data_root: str | None = None) -> ZooEntry:
    """Write a finished run's weights and manifest into the zoo; return the manifest.

    The test accuracy in the manifest is recomputed from the exported file on the full official
    test set (not copied from the run), so the manifest describes exactly what was shipped.
    """
    base = zoo_dir(root)
    base.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in run.model.state_dict().items()}
    path = base / f"{plan.name}.safetensors"
    atomic_write_bytes(path, save(state, metadata={"name": plan.name, "format": "tdlib-zoo-v1"}))
    cfg = run.config
    prov_file = Path(run.folder) / PROVENANCE_FILE
    prov = read_json(prov_file) if prov_file.is_file() else {}
    result = read_json(Path(run.folder) / "result.json")
    history = [{k: h[k] for k in ("epoch", "lr", "train_loss", "train_accuracy", "val_accuracy",
                                  "seconds") if k in h} for h in run.history]
    seconds = float(sum(h["seconds"] for h in run.history))
    entry = ZooEntry(
        name=plan.name, dataset=plan.dataset, backbone=plan.backbone, variant=plan.variant,
        seed=plan.seed, file=path.name, bytes=path.stat().st_size, sha256=sha256_file(path),
        test_accuracy=float("nan"), test_images=0, val_accuracy=100.0 * float(run.val_accuracy),
        predictions_sha256="", config=to_dict(cfg), config_hash=config_hash(cfg),
        recipe={
            "profile": "paper", "epochs": cfg.train.epochs, "precision": plan.precision,
            "paper_epochs": _paper_epochs(plan), "lr": cfg.train.lr,
            "lr_drops_after_epochs": list(cfg.train.milestones()), "lr_factor": cfg.train.lr_factor,
            "batch_size": cfg.train.batch_size, "momentum": cfg.train.momentum,
            "nesterov": cfg.train.nesterov, "weight_decay_keras_l2": cfg.train.weight_decay,
            "train_images": _train_images(cfg),
            "validation_fraction": cfg.data.val_fraction,
            **({"image_size": cfg.data.image_size, "resize_size": cfg.data.resize_size,
                "boxed_train_images_held_out": _held_out(cfg)} if plan.dataset == "imagenette" else {}),
        },
        command=plan.command,
        training={
            "equivalent_command": plan.train_command,
            "tdlib_commit": prov.get("tdlib_commit", "unknown"),
            "machine": prov.get("machine", machine_description()),
            "device": result.get("device", "cpu"), "threads": prov.get("threads"),
            "torch": prov.get("torch", torch.__version__),
            "seconds": seconds, "minutes": round(seconds / 60.0, 1),
            "started": prov.get("started"), "exported": utc_now(),
            "note": prov.get("note", ""),
        },
        history=history,
    )
    res = evaluate_entry(entry, root=root, data_root=data_root, use_cache=False)
    final = ZooEntry(**{**entry.to_json(), "test_accuracy": res.accuracy, "test_images": res.n,
                        "predictions_sha256": res.predictions_sha256, "correct": bits(res.correct)})
    write_entry(final, root)
    return final


def _train_images(cfg: Any) -> int:
    return len(get_dataset(cfg.data).train)


def _held_out(cfg: Any) -> int:
    return int(get_dataset(cfg.data).held_out_boxed)


def _paper_epochs(plan: PlanEntry) -> int:
    return run_config(plan.dataset, plan.backbone, plan.variant, profile="paper").train.epochs


def write_provenance(folder: Path, *, threads: int, note: str = "") -> None:
    """Record where and from which commit a zoo run is trained (once, before it starts)."""
    path = folder / PROVENANCE_FILE
    if path.is_file():
        return
    write_json(path, {"tdlib_commit": _git_commit(), "machine": machine_description(),
                      "threads": threads, "torch": torch.__version__, "started": utc_now(),
                      "note": note})


def exported_from(plan: PlanEntry, run: Any, root: str | os.PathLike[str] | None = None) -> ZooEntry | None:
    """The zoo's entry for ``plan`` if it was exported from this very run (same config hash, same
    training start) and its weights file still has the recorded sha256; otherwise None.

    Re-exporting such a run would only rewrite the same weights (safetensors' header order is not
    stable across processes, so even the bytes would change) and re-evaluate the test set.
    """
    base = zoo_dir(root)
    manifest, prov_file = base / f"{plan.name}.json", Path(run.folder) / PROVENANCE_FILE
    if not manifest.is_file() or not prov_file.is_file():
        return None
    try:
        entry = read_entry(manifest)
    except ZooError:
        return None
    started = read_json(prov_file).get("started")
    same = (entry.config_hash == config_hash(run.config) and started is not None
            and entry.training.get("started") == started)
    weights = base / entry.file
    return entry if same and weights.is_file() and sha256_file(weights) == entry.sha256 else None


def train_entries(*, only: str | None = None, runs_root: str | Path | None = None,
                  root: str | os.PathLike[str] | None = None, data_root: str | None = None,
                  device: str = "auto", progress: bool = True,
                  log: Callable[[str], None] = print) -> list[ZooEntry]:
    """Train (or resume, or reuse) the selected plan entries and export each one as it finishes."""
    out = []
    for plan in select_plan(only):
        cfg = plan.config(data_root)
        data = get_dataset(cfg.data)
        folder = run_folder(cfg, 0, runs_root)
        if not (folder / "DONE.json").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            write_provenance(folder, threads=torch.get_num_threads())
        log(f"[zoo] {plan.name}: {cfg.train.epochs} epochs on {len(data.train)} images ({folder})")
        run = fit_or_load(cfg, runs_root=runs_root, device=device, data=data, progress=progress)
        kept = exported_from(plan, run, root)
        if kept is not None:
            log(f"[zoo] {plan.name}: already exported from this run ({kept.test_accuracy:.2f}%), kept as is")
            out.append(kept)
            continue
        entry = export_run(plan, run, root=root, data_root=data_root)
        log(f"[zoo] {plan.name}: test accuracy {entry.test_accuracy:.2f}% "
            f"({entry.training['minutes']} min) -> {zoo_dir(root) / entry.file}")
        out.append(entry)
    return out
