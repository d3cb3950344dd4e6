"""Training: the reference recipe, resumable runs, repetitions, data parallelism."""

from tdlib.training.checkpoint import load_checkpoint, model_signature, save_checkpoint
from tdlib.training.engine import EpochStats, evaluate, predict, train_epoch
from tdlib.training.fit import (
    RunResult,
    build_for,
    fit_or_load,
    fit_repetitions,
    get_dataset,
    load_trained,
    mean_std,
    run_folder,
)
from tdlib.training.optim import decay_groups, make_optimizer, make_scheduler

__all__ = [
    "EpochStats",
    "RunResult",
    "build_for",
    "decay_groups",
    "evaluate",
    "fit_or_load",
    "fit_repetitions",
    "get_dataset",
    "load_checkpoint",
    "load_trained",
    "make_optimizer",
    "make_scheduler",
    "mean_std",
    "model_signature",
    "predict",
    "run_folder",
    "save_checkpoint",
    "train_epoch",
]
