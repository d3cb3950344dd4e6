"""Robustness metrics of the paper's Exp 2: accuracy-loss curve, SR, ptb, ptbr, AUC."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from tdlib.attacks.result import AttackResult
from tdlib.errors import ConfigError

__all__ = ["DEFAULT_L2_BOUND", "accuracy_loss_curve", "attack_summary", "curve_auc"]

#: L2 bound of the AUC (pixel space [0, 1]); about where the MNIST curves of the paper saturate.
DEFAULT_L2_BOUND = 5.0


def accuracy_loss_curve(l2: ArrayLike, n_total: int) -> tuple[np.ndarray, np.ndarray]:
    """The paper's "test accuracy loss (%)" against "L2 bound" (notebook of ``evaluate``).

    A scaled empirical CDF of the per-sample minimal L2: sorted distinct finite positive distances,
    and 100 * (#samples with 0 < L2 <= d) / ``n_total`` at each. Zeros (clean-misclassified) and
    inf (failures) add nothing. The curve starts at (0, 0) and its plateau is
    #successes / ``n_total`` (not the success rate).

    Args:
        l2: per-sample minimal L2 (0 / finite / inf codes as in :class:`AttackResult`).
        n_total: denominator, normally the whole test set.

    Returns:
        (distances, loss_percent), both float64 of the same length, distances increasing.
    """
    if isinstance(l2, torch.Tensor):
        l2 = l2.detach().double().cpu().numpy()
    d = np.asarray(l2, dtype=np.float64).ravel()
    if n_total <= 0 or n_total < d.size:
        raise ConfigError(f"n_total must be >= the number of samples ({d.size}); got {n_total}")
    if np.isnan(d).any() or (d < 0).any():
        raise ConfigError("l2 must be >= 0 or inf (no NaN)")
    pos = d[(d > 0) & np.isfinite(d)]
    values, counts = np.unique(pos, return_counts=True)
    distances = np.concatenate([[0.0], values])
    loss = np.concatenate([[0.0], np.cumsum(counts)]) * 100.0 / n_total
    return distances, loss


def curve_auc(distances: np.ndarray, loss_percent: np.ndarray, l2_bound: float) -> float:
    """Normalised area under a step accuracy-loss curve on [0, ``l2_bound``], in [0, 1].

    1 means every sample was broken by an arbitrarily small perturbation; larger = less robust.
    """
    if not l2_bound > 0:
        raise ConfigError(f"l2_bound must be > 0; got {l2_bound}")
    edges = np.minimum(np.append(distances, np.inf), l2_bound)
    widths = np.diff(edges)  # the curve holds loss[i] on [d_i, d_{i+1})
    return float(np.sum(widths * loss_percent) / (100.0 * l2_bound))


def attack_summary(result: AttackResult, *, l2_bound: float = DEFAULT_L2_BOUND,
                   n_total: int | None = None) -> dict[str, Any]:
    """Statistics of one (merged) attack result, as in the paper's ``attack_statistics``.

    Args:
        result: per-sample result (normally merged over repetitions).
        l2_bound: upper limit of the AUC integral.
        n_total: curve denominator (default: the number of samples in ``result``).

    Returns:
        dict with ``n``, ``clean_accuracy`` (%), ``adversarial_accuracy`` (% at unbounded L2),
        ``success_rate`` (% of clean-correct samples broken), ``median_l2`` (median minimal L2 over
        the clean-correct samples; inf once half of them survive), ``mean_l2`` (over successes),
        ``auc`` (normalised area under the accuracy-loss curve up to ``l2_bound``),
        ``ptb`` (mean |x - x_adv| per element over successes), ``ptbr`` (% of elements changed,
        over successes), plus ``attack``, ``protocol``, ``l2_bound``.
    """
    n = result.n
    cc = result.clean_correct.numpy()
    succ = result.success.numpy()
    l2 = result.l2.double().numpy()
    n_cc, n_succ = int(cc.sum()), int(succ.sum())
    distances, loss = accuracy_loss_curve(l2, n_total or max(n, 1))
    return {
        "attack": result.attack,
        "protocol": result.protocol,
        "n": n,
        "clean_accuracy": 100.0 * n_cc / n if n else float("nan"),
        "adversarial_accuracy": 100.0 * (n_cc - n_succ) / n if n else float("nan"),
        "success_rate": 100.0 * n_succ / n_cc if n_cc else float("nan"),
        "median_l2": float(np.median(l2[cc])) if n_cc else float("nan"),
        "mean_l2": float(l2[succ].mean()) if n_succ else float("nan"),
        "auc": curve_auc(distances, loss, l2_bound),
        "l2_bound": float(l2_bound),
        "ptb": float(result.mean_abs.numpy()[succ].mean()) if n_succ else float("nan"),
        "ptbr": 100.0 * float(result.frac_changed.numpy()[succ].mean()) if n_succ else float("nan"),
    }
