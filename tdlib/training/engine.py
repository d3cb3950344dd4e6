"""One training epoch and evaluation over in-memory datasets.

Images come from uint8 tensors (divided by 255) and every augmentation clips to [0, 1], so the
models' per-forward value checks (one host sync each on a GPU) are skipped here with
:func:`tdlib.models.base.trusted_inputs`; shapes are still checked.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tdlib.data import ArrayDataset
from tdlib.data.transforms import BatchTransform
from tdlib.errors import ConfigError
from tdlib.models.base import check_labels, trusted_inputs


@dataclass(frozen=True)
class EpochStats:
    """Mean loss and accuracy of one pass (NaN for both when the pass saw no image, ``n == 0``)."""

    loss: float
    accuracy: float
    n: int


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on CUDA or CPU when ``amp`` (convolutions and matmuls in bf16, BatchNorm,
    softmax and the loss in fp32); a no-op otherwise. On CPUs with AVX512-BF16 / AMX, oneDNN runs
    the bf16 convolutions natively (``benchmarks`` measures whether it pays off)."""
    if amp and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_input(
    x_uint8: torch.Tensor, device: torch.device, channels_last: bool
) -> torch.Tensor:
    x = x_uint8.to(device, non_blocking=True).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _stats(total_loss: float, correct: float, seen: int) -> EpochStats:
    if seen == 0:
        return EpochStats(math.nan, math.nan, 0)
    return EpochStats(total_loss / seen, correct / seen, seen)


def batch_order(
    n: int, batch_size: int, generator: torch.Generator, rank: int = 0, world: int = 1
) -> Iterator[torch.Tensor]:
    """Shuffled batch indices; with ``world > 1`` each rank gets its share of every global batch."""
    perm = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        idx = perm[start : start + batch_size]
        if world > 1:
            idx = idx[rank::world]
            if idx.numel() == 0:
                continue
        yield idx


def train_epoch(
    model: nn.Module,
    data: ArrayDataset,
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
    transform: BatchTransform | None = None,
    amp: bool = False,
    channels_last: bool = False,
    rank: int = 0,
    world: int = 1,
    progress: object | None = None,
) -> EpochStats:
    """One pass over ``data`` in random order (the data stay on ``device``).

    Args:
        progress: an optional tqdm bar, advanced by the number of images per batch.

    Returns:
        mean loss and accuracy (NaN for an empty ``data``: no step is taken).

    Raises:
        InputShapeError: labels outside the model's outputs (checked on the first batch).
    """
    model.train()
    x_all = data.x.to(device)
    y_all = data.y.to(device)
    # float64 sums where the device has them (MPS has not)
    wide = torch.float32 if device.type == "mps" else torch.float64
    total_loss = torch.zeros((), device=device, dtype=wide)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    with trusted_inputs(model):
        for idx in batch_order(len(data), batch_size, generator, rank, world):
            idx_d = idx.to(device)
            x = _to_input(x_all[idx_d], device, channels_last)
            if transform is not None:
                x = transform(x, generator)
            y = y_all[idx_d]
            with autocast(device, amp):
                logits = model(x)
                if seen == 0:
                    check_labels(y_all, logits.shape[1], "training data")
                loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.detach().to(wide) * len(idx)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(idx)
            if progress is not None:
                progress.update(len(idx) * world)  # type: ignore[attr-defined]
    return _stats(float(total_loss), float(correct), seen)


def bn_subset(n: int, max_images: int, seed: int) -> torch.Tensor:
    """Indices of the training images BN recalibration averages over: a seeded random sample of
    ``min(n, max_images)`` of the ``n`` images, in random order.

    Random, not the first ``max_images``: Imagenette's training split is stored sorted by class,
    so the first 2,000 images would cover two or three classes. In random order, not sorted: the
    running variance is the mean of per-batch variances, which would miss the between-class
    variance on class-sorted batches. Drawn from its own NumPy generator (``seed`` tagged for
    this use), so torch's and NumPy's global RNG states are untouched and a resumed run draws
    the same subset.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"recalibrate_bn seed must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng([0xB0_4E, seed])  # "BN" stream, independent of other uses of seed
    return torch.from_numpy(rng.permutation(n)[: max(0, min(n, max_images))].astype(np.int64))


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    data: ArrayDataset,
    *,
    device: torch.device,
    batch_size: int = 500,
    max_images: int = 2000,
    channels_last: bool = False,
    crop: int | None = None,
    seed: int = 0,
) -> None:
    """Recompute BatchNorm running statistics as exact averages over (up to ``max_images``)
    training images, with every other layer (dropout included) in eval mode.

    With Keras' BN momentum 0.99 the running statistics need thousands of steps to forget their
    initial values; the CPU profiles train for a few hundred steps only, so their eval-mode
    accuracy would measure that lag rather than the network.

    The images are a seeded random subset (:func:`bn_subset`; ``seed`` derived from the run's
    seed and epoch by :func:`tdlib.training.fit_or_load`): deterministic, and no global RNG is
    consumed, so resumed runs stay bit-exact. An empty ``data`` leaves the statistics as they are.
    ``crop``: centre-crop stored images to this size (Imagenette stores the larger resize).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or len(data) == 0:
        return
    subset = bn_subset(len(data), max_images, seed).to(data.x.device)
    was_training = model.training
    model.eval()
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = exact mean over the batches
        m.train()
    try:
        with trusted_inputs(model):
            for start in range(0, len(subset), batch_size):
                x = data.x[subset[start : start + batch_size]]
                if crop is not None and x.shape[-1] != crop:
                    off = (x.shape[-1] - crop) // 2
                    x = x[..., off : off + crop, off : off + crop]
                model(_to_input(x, device, channels_last))
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        model.train(was_training)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: ArrayDataset,
    *,
    device: torch.device,
    batch_size: int = 500,
    amp: bool = False,
    channels_last: bool = False,
) -> EpochStats:
    """Loss and accuracy of ``model`` (in eval mode) on ``data``.

    Returns:
        mean loss and accuracy; NaN for both on an empty ``data`` (e.g. no validation split with
        ``val_fraction=0``), never a made-up 0.

    Raises:
        InputShapeError: labels outside the model's outputs.
    """
    was_training = model.training
    model.eval()
    total_loss = 0.0
    correct = 0
    try:
        with trusted_inputs(model):
            for start in range(0, len(data), batch_size):
                x = _to_input(data.x[start : start + batch_size], device, channels_last)
                y = data.y[start : start + batch_size].to(device)
                with autocast(device, amp):
                    logits = model(x).float()
                if start == 0:
                    check_labels(data.y, logits.shape[1], "evaluation data")
                total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(1) == y).sum())
    finally:
        model.train(was_training)
    return _stats(total_loss, correct, len(data))


@torch.no_grad()
def predict(
    model: nn.Module, x: torch.Tensor, *, device: torch.device, batch_size: int = 500
) -> torch.Tensor:
    """Predicted classes for float images ``x`` in [0, 1] (model in eval mode)."""
    model.eval()
    out = [
        model(x[s : s + batch_size].to(device)).argmax(1).cpu()
        for s in range(0, len(x), batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)
