"""What every attack implementation receives and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tdlib.attacks.queries import QueryModel

__all__ = ["AttackContext", "AttackFn"]


@dataclass(frozen=True)
class AttackContext:
    """Settings of one :func:`~tdlib.attacks.run_attack` call, passed to each implementation.

    The protocol is not among them: it chose the implementation (see
    :data:`~tdlib.attacks.registry.REGISTRIES`).
    """

    model: nn.Module
    steps: int
    epsilon: float | None
    seed: int
    device: torch.device
    batch_size: int
    #: what answers the scans' queries (:class:`QueryModel` of ``model``); None: made on demand
    queries: QueryModel | None = None

    @property
    def eval_batch(self) -> int:
        """Chunk size for forward passes over many candidates (no gradients)."""
        return max(self.batch_size, 512)

    @property
    def qmodel(self) -> QueryModel:
        """The model that answers candidate queries (arg-max only, inference mode)."""
        return self.queries if self.queries is not None else QueryModel(self.model, batch=self.eval_batch)


#: ``fn(ctx, x, y, index) -> (x_adv, found)``: ``x`` (n, C, H, W) clean-correct samples on
#: ``ctx.device``, ``y`` their labels, ``index`` their positions in the whole input (for per-sample
#: seeds). ``x_adv`` may be anything where ``found`` is False; the caller verifies and masks.
AttackFn = Callable[[AttackContext, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
