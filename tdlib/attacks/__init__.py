"""Adversarial robustness (the paper's Exp 2): attacks, sweeps, curves and Fourier maps.

Two protocols, each a registry of attack functions (:data:`REGISTRIES`, chosen once per
:func:`run_attack`): ``paper`` reproduces the foolbox 2.2.1 semantics of the paper's runs (first hits
of 1000-step scans, the quadratic noise scaling, foolbox 2's spatial grid, the Linf-driven S&P and
Pointwise), and ``minimal`` searches a per-sample minimal L2 adversarial. See attack-notes for the
details. Under ``paper`` every attack replays foolbox 2.2.1 query for query from per-sample random
streams drawn by numpy (:mod:`tdlib.attacks.streams`): a sample gets the adversarial foolbox 2.2.1
returns for it alone after ``foolbox.set_seeds(sample_seed(seed, index))`` (checked by
tests/attacks/test_foolbox2.py). The scans run on a packed first-hit engine
(:func:`tdlib.attacks.scan.first_hit`) that asks the model itself, batched, in inference mode, on
its own device (:mod:`tdlib.attacks.queries`).

Importing this package imports neither foolbox nor tqdm.
"""

from __future__ import annotations

from tdlib.attacks.core import run_attack
from tdlib.attacks.curves import DEFAULT_L2_BOUND, accuracy_loss_curve, attack_summary, curve_auc
from tdlib.attacks.fourier import fourier_sensitivity
from tdlib.attacks.registry import (
    ATTACKS,
    LINF_ATTACKS,
    PAPER_ATTACKS,
    PROTOCOLS,
    REGISTRIES,
    WHITEBOX_ATTACKS,
    protocol_registry,
)
from tdlib.attacks.result import AttackResult, minimal_over_repetitions
from tdlib.attacks.samples import select_examples
from tdlib.attacks.sweep import robustness_sweep

__all__ = [
    "ATTACKS",
    "DEFAULT_L2_BOUND",
    "LINF_ATTACKS",
    "PAPER_ATTACKS",
    "PROTOCOLS",
    "REGISTRIES",
    "WHITEBOX_ATTACKS",
    "AttackResult",
    "accuracy_loss_curve",
    "attack_summary",
    "curve_auc",
    "fourier_sensitivity",
    "minimal_over_repetitions",
    "protocol_registry",
    "robustness_sweep",
    "run_attack",
    "select_examples",
]
