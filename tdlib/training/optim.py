"""Optimiser and learning-rate schedule of the reference recipe.

* SGD, momentum 0.9, Nesterov.
* Weight decay with Keras ``l2(wd)`` semantics: ``wd * sum(w**2)`` is added to the loss for conv
  and linear *kernels* only, whose gradient is ``2 * wd * w``; so PyTorch ``weight_decay = 2 * wd``
  on those tensors and none on BatchNorm parameters or biases.
* LR × ``lr_factor`` after ``ceil(0.5 E)`` and ``ceil(0.8 E)`` finished epochs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tdlib.config import TrainConfig

_KERNEL_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two parameter groups: kernels (decay ``2 * weight_decay``) and the rest (no decay)."""
    kernels: list[torch.Tensor] = []
    kernel_ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, _KERNEL_LAYERS) and module.weight.requires_grad:
            kernels.append(module.weight)
            kernel_ids.add(id(module.weight))
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in kernel_ids]
    return [
        {"params": kernels, "weight_decay": 2.0 * weight_decay, "name": "kernels"},
        {"params": others, "weight_decay": 0.0, "name": "no_decay"},
    ]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD with (Nesterov) momentum and Keras-semantics weight decay."""
    return torch.optim.SGD(
        decay_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig
) -> torch.optim.lr_scheduler.MultiStepLR:
    """Step schedule stepped once per epoch: LR × lr_factor at each of ``cfg.milestones()``."""
    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(cfg.milestones()), gamma=cfg.lr_factor
    )
