"""Paired bootstrap intervals for the claims engine (NumPy only, seeded, vectorised).

Every effect of the claims compares two models on the **same** images, so the bootstrap resamples
images (one index draw shared by both models) and, where a model has several trained repetitions,
also the repetitions of each model. Intervals are percentile intervals; the quantiles are taken
without interpolation (``lower`` / ``higher``) so that infinite values (an attack that never
succeeds) stay well defined.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_RESAMPLES",
    "Estimate",
    "bootstrap",
    "log_ratio",
    "paired_accuracy_gap",
    "paired_mean",
    "pooled_median",
    "stratified_paired_mean",
]

DEFAULT_RESAMPLES = 2000
_CHUNK_ELEMENTS = 4_000_000  # resampled values held in memory at once


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% (by default) bootstrap interval and the sample it rests on."""

    value: float
    low: float
    high: float
    n: int

    @property
    def ci(self) -> tuple[float, float]:
        return (self.low, self.high)


def _interval(stats: np.ndarray, level: float) -> tuple[float, float]:
    finite_or_inf = stats[~np.isnan(stats)]
    if finite_or_inf.size == 0:
        return (float("nan"), float("nan"))
    alpha = (1.0 - level) / 2.0
    low = float(np.quantile(finite_or_inf, alpha, method="lower"))
    high = float(np.quantile(finite_or_inf, 1.0 - alpha, method="higher"))
    return low, high


def bootstrap(
    stat: Callable[[np.ndarray], np.ndarray],
    n: int,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
    width: int = 1,
) -> tuple[float, float]:
    """Percentile interval of ``stat`` over bootstrap resamples of ``n`` items.

    Args:
        stat: maps a (B, n) array of item indices to B statistics.
        n: number of items (images).
        resamples: bootstrap draws.
        seed: seed of the draws (intervals are reproducible).
        level: coverage of the interval.
        width: values per item that ``stat`` reads (sets the chunk size only).

    Returns:
        (low, high); NaNs when ``n`` is 0.
    """
    if n <= 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // max(n * width, 1))
    out = []
    done = 0
    while done < resamples:
        b = min(chunk, resamples - done)
        out.append(np.asarray(stat(rng.integers(0, n, size=(b, n))), dtype=np.float64))
        done += b
    return _interval(np.concatenate(out), level)


def paired_mean(d: np.ndarray, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                level: float = 0.95) -> Estimate:
    """Mean of per-item paired differences ``d`` (n,) with a bootstrap interval over items."""
    d = np.asarray(d, dtype=np.float64)
    n = d.shape[0]
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    low, high = bootstrap(lambda idx: d[idx].mean(axis=1), n, resamples=resamples, seed=seed,
                          level=level)
    return Estimate(float(d.mean()), low, high, n)


def stratified_paired_mean(d: np.ndarray, groups: np.ndarray, *,
                           resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                           level: float = 0.95) -> Estimate:
    """Group-balanced mean of paired differences: the mean over groups of each group's mean of
    ``d``, with a bootstrap that resamples items within each group (so every group keeps its size
    and weighs the same whatever its size).

    Args:
        d: (n,) paired differences.
        groups: (n,) group label of each item (e.g. the class).
    """
    d = np.asarray(d, dtype=np.float64)
    g = np.asarray(groups)
    if d.shape != g.shape or d.ndim != 1:
        raise ValueError(f"d and groups must be 1-D of the same length, got {d.shape} and {g.shape}")
    if d.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    members = [d[g == k] for k in np.unique(g)]
    value = float(np.mean([m.mean() for m in members]))
    rng = np.random.default_rng(seed)
    stats = np.zeros(resamples)
    for m in members:
        stats += m[rng.integers(0, m.size, size=(resamples, m.size))].mean(axis=1)
    low, high = _interval(stats / len(members), level)
    return Estimate(value, low, high, int(d.size))


def paired_accuracy_gap(correct_a: np.ndarray, correct_b: np.ndarray, *,
                        resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                        level: float = 0.95) -> Estimate:
    """Accuracy of model A minus model B, in points, paired over the same images.

    Args:
        correct_a: (R_a, n) per-repetition, per-image correctness of model A (0/1); a 1-D array
            is one repetition.
        correct_b: (R_b, n) the same for model B, on the same n images in the same order.

    Each bootstrap draw resamples the images (shared by A and B) and, independently for A and B,
    their repetitions; so the interval covers both the finite test set and the training seed.

    Example:
        >>> import numpy as np
        >>> a = np.array([1, 1, 1, 1, 0, 1, 1, 1, 1, 1] * 50)  # 90% correct
        >>> b = np.array([1, 1, 1, 0, 0, 1, 1, 1, 1, 1] * 50)  # 80% on the same images
        >>> est = paired_accuracy_gap(a, b, resamples=200)
        >>> round(est.value, 1), est.n, est.low > 0
        (10.0, 500, True)
    """
    a = np.atleast_2d(np.asarray(correct_a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(correct_b, dtype=np.float64))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired accuracies need the same images: {a.shape[1]} vs {b.shape[1]}")
    n = a.shape[1]
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    value = 100.0 * float(a.mean() - b.mean())
    rng = np.random.default_rng(seed + 1)

    def stat(idx: np.ndarray) -> np.ndarray:
        out = np.empty(idx.shape[0])
        for k, row in enumerate(idx):
            counts = np.bincount(row, minlength=n).astype(np.float64) / n
            acc_a = a @ counts  # (R_a,) accuracy of each repetition on this resample
            acc_b = b @ counts
            ra = rng.integers(0, a.shape[0], size=a.shape[0])
            rb = rng.integers(0, b.shape[0], size=b.shape[0])
            out[k] = 100.0 * (acc_a[ra].mean() - acc_b[rb].mean())
        return out

    low, high = bootstrap(stat, n, resamples=resamples, seed=seed, level=level)
    return Estimate(value, low, high, n)


def log_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-item ``log(a / b)`` of non-negative distances with the conventions of minimal L2.

    ``inf`` (no adversarial found) is larger than any distance: ``log(inf / x) = +inf``,
    ``log(x / inf) = -inf``, and ``inf`` against ``inf`` is a tie (0). Zero distances must be
    excluded by the caller (they mean "misclassified before the attack").
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    both_inf = np.isinf(a) & np.isinf(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(a) - np.log(b)
    return np.where(both_inf, 0.0, out)


def pooled_median(values: np.ndarray, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                  level: float = 0.95) -> Estimate:
    """Median over all values of (n, k) per-item groups, with a bootstrap over the n items.

    The median is the lower one of the two middle values for an even count (no averaging).

    A group is resampled as a whole (e.g. one image's log-ratios under the k attacks of a family),
    so the interval respects that the k values of one image are not independent.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    n, k = v.shape
    if n == 0 or k == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    def median(x: np.ndarray) -> np.ndarray:
        # no averaging of the two middle values: -inf and +inf must not give NaN
        return np.quantile(x, 0.5, axis=-1, method="inverted_cdf")

    low, high = bootstrap(lambda idx: median(v[idx].reshape(idx.shape[0], -1)), n,
                          resamples=resamples, seed=seed, level=level, width=k)
    return Estimate(float(median(v.reshape(-1))), low, high, n)
