"""Pick (original, adversarial, difference) examples of an attack result for plotting."""

from __future__ import annotations

import torch
from torch import Tensor

from tdlib.attacks.result import AttackResult
from tdlib.errors import ConfigError, InputShapeError, check_name

__all__ = ["select_examples"]

_HOW = ("spread", "smallest", "largest")


def select_examples(result: AttackResult, k: int, *, x: Tensor,
                    how: str = "spread") -> dict[str, Tensor]:
    """Up to ``k`` successful samples with their clean and adversarial images.

    Args:
        result: an attack result.
        k: number of examples (fewer if fewer successes).
        x: the clean inputs the result was computed on (results do not store them).
        how: ``"spread"`` (evenly spaced over the sorted L2), ``"smallest"`` or ``"largest"`` L2.

    Returns:
        dict with ``index`` (k,), ``l2`` (k,), ``original``, ``adversarial`` and ``difference``
        (adversarial - original), each (k, C, H, W) on the CPU.
    """
    check_name("example selection", how, _HOW)
    if k < 0:
        raise ConfigError(f"k must be >= 0; got {k}")
    if tuple(x.shape) != tuple(result.x_adv.shape):
        raise InputShapeError(
            f"x has shape {tuple(x.shape)}, the result {tuple(result.x_adv.shape)}")
    idx = result.success.nonzero().squeeze(1)
    idx = idx[torch.argsort(result.l2[idx], stable=True)]
    m = min(k, idx.numel())
    if how == "smallest":
        idx = idx[:m]
    elif how == "largest":
        idx = idx[idx.numel() - m:].flip(0)
    elif m:
        pick = torch.linspace(0, idx.numel() - 1, m).round().long()
        idx = idx[pick]
    else:
        idx = idx[:0]
    original = x.detach().float().cpu()[idx]
    adversarial = result.x_adv[idx]
    return {"index": idx, "l2": result.l2[idx], "original": original,
            "adversarial": adversarial, "difference": adversarial - original}
