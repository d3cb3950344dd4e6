"""Resumable robustness sweep: every (attack, repetition) saved atomically, then merged."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tdlib.attacks.checks import check_attack_call, check_counts
from tdlib.attacks.core import run_attack
from tdlib.attacks.curves import attack_summary
from tdlib.attacks.registry import ATTACKS, PROTOCOLS, WHITEBOX_ATTACKS
from tdlib.attacks.result import AttackResult, minimal_over_repetitions
from tdlib.attacks.seeding import derive_seed
from tdlib.errors import CheckpointError, ConfigError, InputShapeError, check_name
from tdlib.io import atomic_write_bytes, ensure_writable_dir, run_lock, write_json
from tdlib.progress import progress_bar

__all__ = ["SUMMARY_FILE", "rep_path", "rep_seed", "robustness_sweep"]

SUMMARY_FILE = "summary.json"


def rep_seed(seed: int, attack: str, rep: int) -> int:
    """Seed of one repetition, derived from the base seed, the attack and the repetition."""
    return derive_seed(seed, attack, rep)


def rep_path(out_dir: str | Path, attack: str, rep: int) -> Path:
    """File of one repetition: ``<out_dir>/<attack>/rep<rep>.pt``."""
    return Path(out_dir) / attack / f"rep{rep}.pt"


def _labels_digest(y: Tensor) -> str:
    return hashlib.sha256(y.detach().cpu().long().numpy().tobytes()).hexdigest()[:16]


def _save(path: Path, result: AttackResult, meta: dict[str, Any], seconds: float) -> None:
    buf = io.BytesIO()
    torch.save({"result": result.to_state(), "meta": meta, "seconds": seconds}, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load(path: Path, meta: dict[str, Any]) -> tuple[AttackResult, float]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read attack result {path}: {exc}") from exc
    if state.get("meta") != meta:
        raise ConfigError(
            f"{path} belongs to another sweep ({state.get('meta')} != {meta}); "
            "use another out_dir or delete it"
        )
    return AttackResult.from_state(state["result"]), float(state.get("seconds", float("nan")))


def _check_sweep(model: nn.Module, x: Tensor, y: Tensor, attacks: Sequence[str], *, protocol: str,
                 device: torch.device | str | None, **counts: int) -> None:
    """Every check of :func:`robustness_sweep` (and of the :func:`run_attack` calls it makes), so
    that a bad call fails before ``out_dir`` or its lock exists."""
    if isinstance(attacks, str) or not isinstance(attacks, Sequence):
        raise ConfigError(f"attacks must be a list of attack names; got {attacks!r} (for one "
                          "attack pass [name])")
    if not attacks:
        raise ConfigError(f"attacks is empty; pass at least one of: {', '.join(sorted(ATTACKS))}")
    for a in attacks:
        check_name("attack", a, ATTACKS)
    repeated = sorted({a for a in attacks if attacks.count(a) > 1})
    if repeated:
        raise ConfigError(f"attacks lists {', '.join(repeated)} more than once; each attack runs "
                          "`reps` times already, so list it once (raise reps for more repetitions)")
    check_name("protocol", protocol, PROTOCOLS)
    check_counts(**counts)
    check_attack_call(model, x, y, device)
    if x.shape[0] == 0:
        raise InputShapeError("robustness_sweep needs at least one image (its summary statistics "
                              "over no images are undefined); pass a non-empty batch")


def robustness_sweep(model: nn.Module, x: Tensor, y: Tensor, attacks: Sequence[str], *,
                     out_dir: str | Path, reps: int = 3, protocol: str = "paper", seed: int = 0,
                     batch_size: int = 128, device: torch.device | str | None = None,
                     steps: int = 1000, whitebox_steps: int = 100,
                     progress: bool = True) -> dict[str, AttackResult]:
    """Run each attack ``reps`` times, keep per sample the minimal L2, write a summary.

    Each (attack, repetition) result is written to ``<out_dir>/<attack>/rep<r>.pt`` as soon as it
    is computed (atomically) and reused when present, so an interrupted sweep reruns only what is
    missing. Repetition seeds are derived from (``seed``, attack, r), so reruns are identical.
    ``<out_dir>/summary.json`` maps each attack to :func:`attack_summary` of the merged result.

    Args:
        model: classifier in eval mode.
        x: (N, C, H, W) inputs in [0, 1], N >= 1 (any floating dtype, see :func:`run_attack`).
        y: (N,) integer labels.
        attacks: distinct attack names (see :data:`ATTACKS`).
        out_dir: results folder.
        reps: repetitions per attack (the paper: 3).
        protocol: ``"paper"`` or ``"minimal"``.
        seed: base seed.
        batch_size: see :func:`run_attack`.
        device: see :func:`run_attack`.
        steps: see :func:`run_attack` (scan length of the paper's attacks: 1000 as foolbox 2).
        whitebox_steps: iterations of the gradient attacks (PGD/DDN, C&W, FGSM scan).
        progress: show a tqdm bar.

    Returns:
        attack -> result merged with :func:`minimal_over_repetitions`.

    Raises:
        UnknownNameError: an unknown attack or protocol.
        ConfigError: ``out_dir`` holds results of another configuration; model in training mode;
            ``attacks`` empty, a string or with repeats; a count (``reps``, ``steps``...) < 1.
        InputShapeError: ``x`` empty or not a floating (N, C, H, W) tensor; ``y`` not matching
            integer labels inside the model's outputs.
        InputValueError: NaN/inf in ``x`` or values outside [0, 1] (subclass of InputShapeError).

    Every argument is checked before ``out_dir`` (or its lock) is created.
    """
    _check_sweep(model, x, y, attacks, protocol=protocol, device=device, reps=reps,
                 batch_size=batch_size, steps=steps, whitebox_steps=whitebox_steps)
    out = ensure_writable_dir(out_dir)
    merged: dict[str, AttackResult] = {}
    seconds: dict[str, float] = {}
    with run_lock(out), progress_bar(len(attacks) * reps, enabled=progress,
                             desc="attacks") as bar:
        for attack in attacks:
            results = []
            for r in range(reps):
                n_steps = whitebox_steps if attack in WHITEBOX_ATTACKS else steps
                meta = {"attack": attack, "rep": r, "protocol": protocol, "seed": seed,
                        "steps": n_steps, "n": int(x.shape[0]), "labels": _labels_digest(y)}
                path = rep_path(out, attack, r)
                bar.set_postfix_str(f"{attack} rep {r}")
                if path.is_file():
                    res, secs = _load(path, meta)
                else:
                    t0 = time.perf_counter()
                    res = run_attack(model, x, y, attack, protocol=protocol,
                                     seed=rep_seed(seed, attack, r), batch_size=batch_size,
                                     device=device, steps=n_steps)
                    secs = time.perf_counter() - t0
                    _save(path, res, meta, secs)
                seconds[attack] = seconds.get(attack, 0.0) + secs
                results.append(res)
                bar.update(1)
            merged[attack] = minimal_over_repetitions(results)
        write_json(out / SUMMARY_FILE, {a: {**attack_summary(m), "seconds": seconds[a], "reps": reps}
                                        for a, m in merged.items()})
    return merged
