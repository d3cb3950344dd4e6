"""Train-or-reuse one run, resumable at every epoch; repetitions with mean ± std.

Run folder: ``<runs>/train/<dataset>-<backbone>-<variant>-<config hash>/rep<k>/`` holding

* ``checkpoint.pt``: written atomically after every epoch (model, optimiser, scheduler, RNG, epoch,
  history); an interrupted run resumes from it, bit-exactly on CPU;
* ``history.json`` / ``history.csv``: per-epoch loss, accuracy, LR and seconds;
* ``model.pt`` + ``result.json`` + ``DONE.json`` (last) when finished: the run is then reused.

Any of these files may be truncated, hand-edited or from another version. A damaged
``result.json`` of a finished run is recomputed from ``model.pt`` (and ``history.json``); every
other damaged file stops with one :class:`~tdlib.errors.CheckpointError` /
:class:`~tdlib.errors.ResultsError` naming the file and what to do. The run folder (and its
lock) is created only once the inputs, the device and the data are known to be good.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tdlib.config import RunConfig, config_hash, to_dict
from tdlib.data import DatasetBundle, load_dataset
from tdlib.errors import CheckpointError, ConfigError, ResultsError
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
from tdlib.models import build_model, model_summary
from tdlib.progress import progress_bar
from tdlib.training import distributed as dist_utils
from tdlib.training.checkpoint import (
    load_checkpoint,
    load_model_state,
    model_signature,
    require,
    save_checkpoint,
)
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


def _retrain_fix(folder: Path) -> str:
    return f"delete the run folder {str(folder)!r} (or its DONE.json) to retrain it"


_RESULT_NUMBERS = ("test_accuracy", "val_accuracy", "seconds")
_RESULT_INTS = ("seed", "params", "macs")


def _result_ok(res: object) -> bool:
    if not isinstance(res, dict):
        return False
    nums = all(isinstance(res.get(k), int | float) and not isinstance(res.get(k), bool)
               for k in _RESULT_NUMBERS)
    ints = all(isinstance(res.get(k), int) and not isinstance(res.get(k), bool) for k in _RESULT_INTS)
    return nums and ints


def _read_history(path: Path, fix: str) -> list[dict[str, Any]]:
    """``history.json``: a list of one dict per epoch (each with its ``epoch`` number)."""
    todo = f"restore it (history.csv holds the same table), or {fix}"
    if not path.is_file():
        raise ResultsError(f"{str(path)!r} is missing from a finished run; {todo}")
    hist = read_json(path, expect=list, fix=todo)
    for i, row in enumerate(hist):
        if (not isinstance(row, dict) or row.get("epoch") != i + 1
                or not isinstance(row.get("val_accuracy"), int | float)
                or not isinstance(row.get("seconds"), int | float)):
            raise ResultsError(
                f"{str(path)!r}: entry {i} is not the record of epoch {i + 1} (hand-edited or "
                f"written by another tdlib version); {todo}"
            )
    return hist


def load_trained(cfg: RunConfig, rep: int = 0, runs_root: str | Path | None = None,
                 data: DatasetBundle | None = None) -> RunResult:
    """Load a finished run.

    A missing or damaged ``result.json`` is recomputed (test accuracy re-evaluated from
    ``model.pt``) and rewritten.

    Raises:
        CheckpointError: ``model.pt`` absent, unreadable, of another config/architecture, or
            holding weights that do not fit the model.
        ResultsError: ``history.json`` damaged.
    """
    _check_rep(rep)
    folder = run_folder(cfg, rep, runs_root)
    data = data or get_dataset(cfg.data)
    model = build_for(cfg, data)
    fix = _retrain_fix(folder)
    model_path = folder / "model.pt"
    if not model_path.is_file() and not is_done(folder):
        raise CheckpointError(
            f"no finished run in {str(folder)!r} ({_describe(cfg)}); train it first with "
            "fit_or_load() or `python -m tdlib train`"
        )
    ckpt = load_checkpoint(model_path, config_hash=config_hash(cfg),
                           signature=model_signature(model), fix=fix)
    load_model_state(model, require(ckpt, "model", dict, model_path, fix), model_path, fix)
    model.eval()
    history = _read_history(folder / "history.json", fix)
    res: Any = None
    result_path = folder / "result.json"
    if result_path.is_file():
        try:
            res = read_json(result_path, expect=dict)
        except ResultsError:
            res = None
    if not _result_ok(res):  # missing, not JSON, or keys lost: recompute what it held
        warnings.warn(f"{str(result_path)!r} is {'damaged' if result_path.is_file() else 'missing'}: "
                      "the finished run's test accuracy is re-evaluated from model.pt and the file "
                      "rewritten (the weights and history are intact)", stacklevel=2)
        res = _recompute_result(cfg, rep, folder, model, data, history)
    return RunResult(
        config=cfg, rep=rep, seed=res["seed"], folder=folder, model=model, history=history,
        test_accuracy=res["test_accuracy"], val_accuracy=res["val_accuracy"],
        seconds=res["seconds"], params=res["params"], macs=res["macs"], reused=True,
    )


def _recompute_result(cfg: RunConfig, rep: int, folder: Path, model: nn.Module, data: DatasetBundle,
                      history: list[dict[str, Any]]) -> dict[str, Any]:
    dev = torch.device("cpu")
    te = evaluate(model, data.test, device=dev, batch_size=cfg.train.eval_batch_size)
    params, macs = _count(model)
    result = RunResult(
        cfg, rep, cfg.train.seed + rep, folder, model, history, te.accuracy,
        float(history[-1]["val_accuracy"]) if history else math.nan,
        float(sum(h["seconds"] for h in history)), params, macs, reused=True,
    )
    summary = result.summary()
    summary.update(config=to_dict(cfg), device=str(dev), recomputed="result.json was damaged or "
                   "missing: test accuracy re-evaluated from model.pt")
    with contextlib.suppress(OSError):  # a read-only run store: the values are still returned
        write_json(folder / "result.json", summary)
    return summary


def _check_rep(rep: object) -> None:
    if isinstance(rep, bool) or not isinstance(rep, int) or rep < 0:
        raise ConfigError(f"rep must be an integer >= 0 (the repetition index), got {rep!r}")


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
        runs_root: root of the run folders (default ``$TDLIB_RUNS`` or ``./runs``); an empty
            path is refused.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        data: the dataset, if already loaded.
        progress: show a progress bar.
        max_epochs: stop after this many epochs in this call (the run stays resumable); used to
            split long runs and to test resumption.

    Nothing is written (no run folder, no lock) before the arguments, the device, the data and
    the model are known to be good.

    Returns:
        the result; ``reused`` tells whether it was loaded from a finished run.

    Raises:
        ConfigError: bad ``cfg`` / ``rep`` / ``max_epochs`` / ``$TDLIB_THREADS``.
        DataError: the dataset is missing or damaged.
        CheckpointError: a checkpoint on disk belongs to another config or architecture, is
            unreadable, or lacks what a resume needs.
        ResultsError: a damaged ``history.json`` in a finished run.
        RunDirError: the run folder is not writable (``DiskFullError``: the disk is full).
    """
    if not isinstance(cfg, RunConfig):
        raise ConfigError(f"cfg must be a RunConfig (see tdlib.config.run_config), got {type(cfg).__name__}")
    _check_rep(rep)
    if max_epochs is not None and (isinstance(max_epochs, bool) or not isinstance(max_epochs, int)
                                   or max_epochs < 1):
        raise ConfigError(f"max_epochs must be an integer >= 1 or None, got {max_epochs!r}")
    dev = select_device(device)
    if dev.type == "cpu":
        set_threads()
    folder = run_folder(cfg, rep, runs_root)  # refuses an empty runs_root; creates nothing
    data = data or get_dataset(cfg.data)
    if is_done(folder):  # finished runs are immutable (DONE.json is written last): no lock, so
        return load_trained(cfg, rep, runs_root, data)  # a read-only run store works
    seed = cfg.train.seed + rep
    seed_everything(seed)
    model = build_for(cfg, data)  # a config/data mismatch fails here, before any folder exists
    world, rank = dist_utils.world_and_rank()
    if rank == 0:
        ensure_writable_dir(folder)
    chash = config_hash(cfg)
    lock = run_lock(folder) if rank == 0 else dist_utils.null_lock()
    with lock:
        if is_done(folder):
            return load_trained(cfg, rep, runs_root, data)
        return _train(cfg, rep, folder, chash, dev, data, progress, max_epochs, world, rank, model)


def _resume(ckpt_path: Path, chash: str, signature: str, cfg: RunConfig, model: nn.Module,
            optimizer: torch.optim.Optimizer, scheduler: Any, dev: torch.device,
            ) -> tuple[list[dict[str, Any]], int]:
    """Restore model, optimiser, scheduler and RNG from ``checkpoint.pt``; (history, epoch).

    Every entry is checked first, so a checkpoint of another version or a hand-edited one is one
    CheckpointError naming the file (delete it to restart), not a KeyError halfway through.
    """
    ckpt = load_checkpoint(ckpt_path, config_hash=chash, signature=signature)
    epoch = require(ckpt, "epoch", int, ckpt_path)
    history = require(ckpt, "history", list, ckpt_path)
    opt_state = require(ckpt, "optimizer", dict, ckpt_path)
    sched_state = require(ckpt, "scheduler", dict, ckpt_path)
    rng = require(ckpt, "rng", dict, ckpt_path)
    if not 0 <= epoch <= cfg.train.epochs or len(history) != epoch:
        raise CheckpointError(
            f"checkpoint {str(ckpt_path)!r} says epoch {epoch} with {len(history)} history "
            f"entries, for a run of {cfg.train.epochs} epochs (hand-edited?); delete it to "
            "restart this run from scratch"
        )
    if not isinstance(rng.get("torch"), torch.Tensor) or rng["torch"].dtype != torch.uint8:
        raise CheckpointError(f"checkpoint {str(ckpt_path)!r} lacks its torch RNG state "
                              "(rng['torch']); delete it to restart this run from scratch")
    load_model_state(model, require(ckpt, "model", dict, ckpt_path), ckpt_path)
    try:
        optimizer.load_state_dict(opt_state)
        for group in optimizer.param_groups:  # load_state_dict does not compare shapes
            for param in group["params"]:
                for name, value in optimizer.state.get(param, {}).items():
                    if isinstance(value, torch.Tensor) and value.ndim and value.shape != param.shape:
                        raise ValueError(f"optimiser state {name!r} is {tuple(value.shape)} for a "
                                         f"parameter of shape {tuple(param.shape)}")
        scheduler.load_state_dict(sched_state)
        _set_rng_state(rng, dev)
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
        raise CheckpointError(
            f"checkpoint {str(ckpt_path)!r}: its optimiser/scheduler/RNG state does not fit this "
            f"run ({' '.join(str(exc).split()) or type(exc).__name__}); delete it to restart "
            "this run from scratch"
        ) from exc
    return list(history), epoch


def _train(
    cfg: RunConfig, rep: int, folder: Path, chash: str, dev: torch.device, data: DatasetBundle,
    progress: bool, max_epochs: int | None, world: int, rank: int, model: nn.Module,
) -> RunResult:
    """Train ``model`` (freshly built right after ``seed_everything(seed)``)."""
    tc = cfg.train
    seed = tc.seed + rep
    model = model.to(dev)
    params, macs = _count(model)
    signature = model_signature(model)
    # channels_last pays off for the wide NIN/ResNet convs, not for LeNet's 1-32 channels
    # (benchmarks/README.md has the measurements)
    channels_last = tc.channels_last if tc.channels_last is not None else cfg.model.backbone != "lenetfc"
    amp = bool(tc.amp)  # fp32 unless bf16 autocast is asked for explicitly (TrainConfig.amp)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, tc)
    scheduler = make_scheduler(optimizer, tc)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    ckpt_path = folder / "checkpoint.pt"
    if ckpt_path.exists():
        history, start_epoch = _resume(ckpt_path, chash, signature, cfg, model, optimizer,
                                       scheduler, dev)
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
            if tc.bn_recalibration:  # a seeded random subset, its own RNG (resume stays exact)
                recalibrate_bn(model, data.train, device=dev, batch_size=tc.eval_batch_size,
                               channels_last=channels_last, crop=data.input_shape[-1],
                               seed=seed * 1_000_003 + epoch)
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
