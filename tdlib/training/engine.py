"""One training epoch and evaluation over in-memory datasets."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tdlib.data import ArrayDataset
from tdlib.data.transforms import BatchTransform


@dataclass(frozen=True)
class EpochStats:
    """Mean loss and accuracy of one pass."""

    loss: float
    accuracy: float
    n: int


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[object]:
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_input(
    x_uint8: torch.Tensor, device: torch.device, channels_last: bool
) -> torch.Tensor:
    x = x_uint8.to(device, non_blocking=True).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


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
    """
    model.train()
    x_all = data.x.to(device)
    y_all = data.y.to(device)
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for idx in batch_order(len(data), batch_size, generator, rank, world):
        idx_d = idx.to(device)
        x = _to_input(x_all[idx_d], device, channels_last)
        if transform is not None:
            x = transform(x, generator)
        y = y_all[idx_d]
        with _autocast(device, amp):
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.detach().double() * len(idx)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(idx)
        if progress is not None:
            progress.update(len(idx) * world)  # type: ignore[attr-defined]
    return EpochStats(float(total_loss) / max(seen, 1), float(correct) / max(seen, 1), seen)


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
) -> None:
    """Recompute BatchNorm running statistics as exact averages over (up to ``max_images``)
    training images, with every other layer (dropout included) in eval mode.

    With Keras' BN momentum 0.99 the running statistics need thousands of steps to forget their
    initial values; the CPU profiles train for a few hundred steps only, so their eval-mode
    accuracy would measure that lag rather than the network. Deterministic (no randomness used).
    ``crop``: centre-crop stored images to this size (Imagenette stores the larger resize).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    was_training = model.training
    model.eval()
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = exact mean over the batches
        m.train()
    n = min(len(data), max_images)
    for start in range(0, n, batch_size):
        x = data.x[start : min(start + batch_size, n)]
        if crop is not None and x.shape[-1] != crop:
            off = (x.shape[-1] - crop) // 2
            x = x[..., off : off + crop, off : off + crop]
        model(_to_input(x, device, channels_last))
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
    """Loss and accuracy of ``model`` (in eval mode) on ``data``."""
    was_training = model.training
    model.eval()
    total_loss = 0.0
    correct = 0
    for start in range(0, len(data), batch_size):
        x = _to_input(data.x[start : start + batch_size], device, channels_last)
        y = data.y[start : start + batch_size].to(device)
        with _autocast(device, amp):
            logits = model(x).float()
        total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    model.train(was_training)
    n = len(data)
    return EpochStats(total_loss / max(n, 1), correct / max(n, 1), n)


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
