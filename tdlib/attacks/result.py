"""The per-sample result of one attack run and the merge over repetitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from tdlib.errors import ConfigError

__all__ = ["AttackResult", "concat_results", "minimal_over_repetitions"]

#: Per-sample fields (first dimension = sample); the rest are metadata strings.
PER_SAMPLE = ("x_adv", "success", "l2", "clean_correct", "linf", "mean_abs", "frac_changed")


@dataclass(frozen=True)
class AttackResult:
    """Outcome of one attack on N samples (all tensors on the CPU).

    Attributes:
        x_adv: (N, C, H, W) float32 in [0, 1]; the adversarial where ``success``, else the
            clean input.
        success: (N,) bool; clean-correct AND an adversarial was found (and verified).
        l2: (N,) float64; 0 where the clean input is misclassified, inf where the attack failed,
            else ``||x - x_adv||_2`` over C*H*W in [0, 1] pixel space of the returned image.
        clean_correct: (N,) bool; the model classifies the clean input correctly.
        linf: (N,) float64 max |x - x_adv| (same 0 / inf codes as ``l2``).
        mean_abs: (N,) float64 mean |x - x_adv| over C*H*W (0 where not ``success``).
        frac_changed: (N,) float64 fraction of the C*H*W elements that changed (0 where not
            ``success``).
        attack: attack name.
        protocol: ``"paper"`` or ``"minimal"``.
    """

    x_adv: Tensor
    success: Tensor
    l2: Tensor
    clean_correct: Tensor
    linf: Tensor
    mean_abs: Tensor
    frac_changed: Tensor
    attack: str = ""
    protocol: str = ""

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.success.shape[0])

    def select(self, index: Tensor) -> AttackResult:
        """Samples at ``index`` (bool mask or integer indices)."""
        kw: dict[str, Any] = {k: getattr(self, k)[index] for k in PER_SAMPLE}
        return AttackResult(**kw, attack=self.attack, protocol=self.protocol)

    def to_state(self) -> dict[str, Any]:
        """A dict of tensors and strings that ``torch.load(weights_only=True)`` accepts."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AttackResult:
        """Inverse of :meth:`to_state`."""
        return cls(**{f.name: state[f.name] for f in fields(cls)})


def concat_results(parts: Sequence[AttackResult]) -> AttackResult:
    """Concatenate results of consecutive batches (same attack and protocol)."""
    if not parts:
        raise ConfigError("concat_results needs at least one result")
    kw: dict[str, Any] = {k: torch.cat([getattr(p, k) for p in parts]) for k in PER_SAMPLE}
    return AttackResult(**kw, attack=parts[0].attack, protocol=parts[0].protocol)


def minimal_over_repetitions(results: Sequence[AttackResult]) -> AttackResult:
    """Per sample, keep the repetition with the smallest positive finite L2 (the paper's merge).

    Clean-misclassified samples keep L2 = 0 and samples no repetition broke keep inf. Unlike the
    paper's script, an update of sample 0 alone is not dropped (its ``np.sum(ind) > 0`` bug).

    Raises:
        ConfigError: ``results`` is empty or its members do not describe the same samples.
    """
    if not results:
        raise ConfigError("minimal_over_repetitions needs at least one result")
    first = results[0]
    for r in results[1:]:
        if r.n != first.n or not torch.equal(r.clean_correct, first.clean_correct):
            raise ConfigError(
                "repetitions disagree on the samples or on clean correctness; "
                "merge only runs of the same model on the same data"
            )
    l2 = torch.stack([torch.where(r.success, r.l2, torch.inf) for r in results])  # (R, N)
    best = l2.argmin(dim=0)  # first repetition wins ties; all-inf -> repetition 0
    kw: dict[str, Any] = {}
    arange = torch.arange(first.n)
    for k in PER_SAMPLE:
        stacked = torch.stack([getattr(r, k) for r in results])
        kw[k] = stacked[best, arange]
    return AttackResult(**kw, attack=first.attack, protocol=first.protocol)
