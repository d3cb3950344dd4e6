"""Train-or-reuse one run, resumable at every epoch; repetitions with mean ± std.

Run folder: ``<runs>/train/<dataset>-<backbone>-<variant>-<config hash>/rep<k>/`` holding

* ``checkpoint.pt``: written atomically after every epoch (model, optimiser, scheduler, RNG, epoch,
  history); an interrupted run resumes from it, bit-exactly on CPU;
* ``history.json`` / ``history.csv``: per-epoch loss, accuracy, LR and seconds;
* ``model.pt`` + ``result.json`` + ``DONE.json`` (last) when finished: the run is then reused.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tdlib.config import RunConfig, config_hash, to_dict
from tdlib.data import DatasetBundle, load_dataset
from tdlib.io import (
    ensure_writable_dir,
    is_done,
    mark_done,
    read_json,
    run_dir,
    run_lock,
    write_csv,
    write_json,
)
from tdlib.progress import progress_bar
from tdlib.training import distributed as dist_utils
from tdlib.training.checkpoint import load_checkpoint, model_signature, save_checkpoint
from tdlib.training.engine import evaluate, recalibrate_bn, train_epoch
from tdlib.training.optim import make_optimizer, make_scheduler
from tdlib.utils import seed_everything, select_device, set_threads


@dataclass
class RunResult:
    """A finished (trained or reused) run."""

    config: RunConfig
    rep: int
    seed: int
    folder: Path
    model: nn.Module
    history: list[dict[str, Any]]
    test_accuracy: float
    val_accuracy: float
    seconds: float
    params: int
    macs: int
    reused: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (the CLI's ``--json`` output)."""
        c = self.config
        return {
            "dataset": c.data.dataset, "backbone": c.model.backbone, "variant": c.model.variant,
            "rep": self.rep, "seed": self.seed, "epochs": c.train.epochs,
            "test_accuracy": self.test_accuracy, "val_accuracy": self.val_accuracy,
            "seconds": self.seconds, "params": self.params, "macs": self.macs,
            "run_dir": str(self.folder), "reused": self.reused, **self.extra,
        }


@functools.lru_cache(maxsize=8)
def _cached_dataset(cfg: Any) -> DatasetBundle:
    return load_dataset(cfg)


def get_dataset(cfg: Any) -> DatasetBundle:
    """:func:`tdlib.data.load_dataset`, memoised per (frozen) DataConfig within a process."""
    return _cached_dataset(cfg)


def build_for(cfg: RunConfig, data: DatasetBundle) -> nn.Module:
    """The model of ``cfg`` sized for ``data`` (channels, input size, classes, pixel mean)."""
    from tdlib.models import build_model

    c, h, _ = data.input_shape
    return build_model(
        cfg.model.backbone, cfg.model.variant, data.spec.num_classes,
        in_channels=c, input_size=h, pyramid=cfg.model.pyramid, merge=cfg.model.merge,
        mean=data.model_mean(),
    )


def run_folder(cfg: RunConfig, rep: int = 0, runs_root: str | Path | None = None) -> Path:
    """Where repetition ``rep`` of ``cfg`` lives."""
    key = f"{cfg.data.dataset}-{cfg.model.backbone}-{cfg.model.variant}-{config_hash(cfg)}"
    return run_dir(runs_root, "train", key) / f"rep{rep}"


def _describe(cfg: RunConfig) -> str:
    return (f"{cfg.data.dataset}/{cfg.model.backbone}/{cfg.model.variant}, "
            f"{cfg.train.epochs} epochs, seed {cfg.train.seed}")


def _count(model: nn.Module) -> tuple[int, int]:
    from tdlib.models import model_summary

    s = model_summary(model)  # type: ignore[arg-type]
    return int(s["params"]), int(s["macs"])


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def load_trained(cfg: RunConfig, rep: int = 0, runs_root: str | Path | None = None,
                 data: DatasetBundle | None = None) -> RunResult:
    """Load a finished run (raises CheckpointError if absent or mismatched)."""
    folder = run_folder(cfg, rep, runs_root)
    data = data or get_dataset(cfg.data)
    model = build_for(cfg, data)
    ckpt = load_checkpoint(folder / "model.pt", config_hash=config_hash(cfg),
                           signature=model_signature(model))
    model.load_state_dict(ckpt["model"])
    model.eval()
    res = read_json(folder / "result.json")
    history = read_json(folder / "history.json")
    return RunResult(
        config=cfg, rep=rep, seed=res["seed"], folder=folder, model=model, history=history,
        test_accuracy=res["test_accuracy"], val_accuracy=res["val_accuracy"],
        seconds=res["seconds"], params=res["params"], macs=res["macs"], reused=True,
    )


def fit_or_load(
    cfg: RunConfig,
    *,
    rep: int = 0,
    runs_root: str | Path | None = None,
    device: str | torch.device = "auto",
    data: DatasetBundle | None = None,
    progress: bool = True,
    max_epochs: int | None = None,
) -> RunResult:
    """Train repetition ``rep`` of ``cfg``, resuming or reusing what is on disk.

    Args:
        cfg: the run's configuration (its hash names the folder).
        rep: repetition index; its seed is ``cfg.train.seed + rep``.
        runs_root: root of the run folders (default ``$TDLIB_RUNS`` or ``./runs``).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        data: the dataset, if already loaded.
        progress: show a progress bar.
        max_epochs: stop after this many epochs in this call (the run stays resumable); used to
            split long runs and to test resumption.

    Returns:
        the result; ``reused`` tells whether it was loaded from a finished run.

    Raises:
        CheckpointError: a checkpoint on disk belongs to another config or architecture, or is
            unreadable.
        RunDirError: the run folder is not writable.
    """
    dev = select_device(device)
    if dev.type == "cpu":
        set_threads()
    world, rank = dist_utils.world_and_rank()
    folder = run_folder(cfg, rep, runs_root)
    if rank == 0:
        ensure_writable_dir(folder)
    data = data or get_dataset(cfg.data)
    chash = config_hash(cfg)
    lock = run_lock(folder) if rank == 0 else dist_utils.null_lock()
    with lock:
        if is_done(folder):
            return load_trained(cfg, rep, runs_root, data)
        return _train(cfg, rep, folder, chash, dev, data, progress, max_epochs, world, rank)


def _train(
    cfg: RunConfig, rep: int, folder: Path, chash: str, dev: torch.device, data: DatasetBundle,
    progress: bool, max_epochs: int | None, world: int, rank: int,
) -> RunResult:
    tc = cfg.train
    seed = tc.seed + rep
    seed_everything(seed)
    model = build_for(cfg, data).to(dev)
    params, macs = _count(model)
    signature = model_signature(model)
    # channels_last pays off for the wide NIN/ResNet convs, not for LeNet's 1-32 channels
    # (benchmarks/README.md has the measurements)
    channels_last = tc.channels_last if tc.channels_last is not None else cfg.model.backbone != "lenetfc"
    amp = tc.amp if tc.amp is not None else dev.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, tc)
    scheduler = make_scheduler(optimizer, tc)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    ckpt_path = folder / "checkpoint.pt"
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, config_hash=chash, signature=signature)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        _set_rng_state(ckpt["rng"], dev)
        history = list(ckpt["history"])
        start_epoch = int(ckpt["epoch"])
    net: nn.Module = dist_utils.wrap(model, dev) if world > 1 else model
    stop = tc.epochs if max_epochs is None else min(tc.epochs, start_epoch + max_epochs)
    desc = f"{cfg.data.dataset} {cfg.model.backbone}/{cfg.model.variant} rep{rep}"
    bar = progress_bar((tc.epochs - start_epoch) * len(data.train), desc,
                       enabled=progress and rank == 0, unit="img", initial=0)
    try:
        for epoch in range(start_epoch, stop):
            t0 = time.perf_counter()
            gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            lr = optimizer.param_groups[0]["lr"]
            tr = train_epoch(net, data.train, optimizer, batch_size=tc.batch_size, generator=gen,
                             device=dev, transform=data.train_transform, amp=amp,
                             channels_last=channels_last, rank=rank, world=world, progress=bar)
            scheduler.step()
            dist_utils.sync_buffers(model, world)
            if tc.bn_recalibration:
                recalibrate_bn(model, data.train, device=dev, batch_size=tc.eval_batch_size,
                               channels_last=channels_last, crop=data.input_shape[-1])
            va = evaluate(model, data.val, device=dev, batch_size=tc.eval_batch_size, amp=amp,
                          channels_last=channels_last)
            history.append({
                "epoch": epoch + 1, "lr": lr, "train_loss": tr.loss, "train_accuracy": tr.accuracy,
                "val_loss": va.loss, "val_accuracy": va.accuracy,
                "seconds": time.perf_counter() - t0,
            })
            bar.set_postfix(loss=f"{tr.loss:.3f}", acc=f"{tr.accuracy:.3f}",
                            val=f"{va.accuracy:.3f}", refresh=False)
            if rank == 0:
                save_checkpoint(ckpt_path, {
                    "config_hash": chash, "signature": signature, "describe": _describe(cfg),
                    "epoch": epoch + 1, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": _rng_state(dev), "history": history,
                })
                write_json(folder / "history.json", history)
                write_csv(folder / "history.csv", history)
            dist_utils.barrier(world)
    finally:
        bar.close()
    extra: dict[str, Any] = {}
    if world > 1:
        extra["replicas_identical"] = dist_utils.replicas_identical(model)
        extra["world_size"] = world
    seconds = float(sum(h["seconds"] for h in history))
    if stop < tc.epochs:  # paused on request: still resumable
        val_acc = history[-1]["val_accuracy"] if history else math.nan
        return RunResult(cfg, rep, seed, folder, model.eval(), history, math.nan, val_acc,
                         seconds, params, macs, reused=False, extra=extra)
    te = evaluate(model, data.test, device=dev, batch_size=tc.eval_batch_size, amp=amp,
                  channels_last=channels_last)
    model = model.to(memory_format=torch.contiguous_format).eval()
    result = RunResult(cfg, rep, seed, folder, model, history, te.accuracy,
                       history[-1]["val_accuracy"], seconds, params, macs, reused=False,
                       extra=extra)
    if rank == 0:
        save_checkpoint(folder / "model.pt", {
            "config_hash": chash, "signature": signature, "describe": _describe(cfg),
            "model": {k: v.contiguous() for k, v in model.state_dict().items()},
        })
        summary = result.summary()
        summary["config"] = to_dict(cfg)
        summary["device"] = str(dev)
        write_json(folder / "result.json", summary)
        mark_done(folder, {"test_accuracy": te.accuracy})
        ckpt_path.unlink(missing_ok=True)
    dist_utils.barrier(world)
    return result


def fit_repetitions(
    cfg: RunConfig,
    *,
    runs_root: str | Path | None = None,
    device: str | torch.device = "auto",
    data: DatasetBundle | None = None,
    progress: bool = True,
) -> list[RunResult]:
    """All ``cfg.train.repetitions`` repetitions (trained or reused)."""
    data = data or get_dataset(cfg.data)
    return [
        fit_or_load(cfg, rep=r, runs_root=runs_root, device=device, data=data, progress=progress)
        for r in range(cfg.train.repetitions)
    ]


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; NaN for a single value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var)
