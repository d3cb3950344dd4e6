"""``run_attack``: one attack on a labelled batch, with the paper's per-sample bookkeeping."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tdlib.attacks.base import AttackContext, AttackFn
from tdlib.attacks.checks import check_attack_call, check_counts, predict, work_device
from tdlib.attacks.queries import query_model
from tdlib.attacks.registry import ATTACKS, LINF_ATTACKS, protocol_registry
from tdlib.attacks.result import AttackResult, concat_results
from tdlib.errors import ConfigError, check_name
from tdlib.models.base import trusted_inputs

__all__ = ["run_attack"]

_TOL = 1e-5  # float32 slack when checking a norm bound


def run_attack(model: nn.Module, x: Tensor, y: Tensor, attack: str, *, protocol: str = "paper",
               seed: int = 0, batch_size: int = 128, device: torch.device | str | None = None,
               steps: int = 1000, epsilon: float | None = None,
               indices: Tensor | None = None) -> AttackResult:
    """Attack ``model`` on (``x``, ``y``) and return per-sample adversarials and distances.

    Only clean-correct samples are attacked. Every adversarial is re-classified on the returned
    (clipped) image; anything not verified misclassified is a failure: its ``x_adv`` is the clean
    input and its L2 is inf (a failed attack's output never enters with a finite distance).

    Args:
        model: classifier on float NCHW inputs in [0, 1] returning logits; must be in eval mode.
        x: (N, C, H, W) inputs in [0, 1], any floating dtype (attacked in float32, as the models
            cast their inputs; ``x_adv`` is float32); never modified. N = 0 gives an empty result.
        y: (N,) integer labels in [0, number of model outputs).
        attack: a name in :data:`ATTACKS`.
        protocol: ``"paper"`` (foolbox 2.2.1 semantics) or ``"minimal"`` (per-sample minimal L2):
            the registry the attack's implementation is taken from
            (:data:`~tdlib.attacks.registry.REGISTRIES`).
        seed: seed of all random draws; re-implemented attacks key it by sample index, so their
            results do not depend on ``batch_size``.
        batch_size: samples attacked together.
        device: where to attack; default the model's device (must match it). Any device: the
            queries run the model where it is; on one without float64 (MPS) the images and
            candidates are kept on the CPU (:func:`~tdlib.attacks.checks.work_device`).
        steps: linear-scan steps (1000 as in foolbox 2) or white-box iterations.
        epsilon: norm bound (Linf for ``fgsm``, L2 otherwise). White-box attacks search inside it;
            for the other attacks adversarials farther than ``epsilon`` (L2) count as failures.
        indices: (N,) each sample's position in the set it belongs to (default ``0..N-1``). The
            random draws are keyed by it, so attacking image 17 of a set alone with
            ``indices=[17]`` reproduces its result in the whole set (``archive verify`` does).

    Returns:
        The :class:`AttackResult` (tensors on the CPU).

    Raises:
        UnknownNameError: unknown ``attack`` or ``protocol``.
        ConfigError: model in training mode, bad ``steps`` / ``batch_size`` / ``epsilon`` / device.
        InputShapeError: ``x`` not a floating (N, C, H, W) tensor, or ``y`` not matching integer
            labels inside the model's outputs.
        InputValueError: NaN/inf in ``x`` or values outside [0, 1] (subclass of InputShapeError).

    All of these are raised before the first attack query; the queries themselves then skip the
    models' per-forward value checks (:func:`~tdlib.models.base.trusted_inputs`) and run the model
    itself on ``device`` (:class:`~tdlib.attacks.queries.QueryModel`).
    """
    check_name("attack", attack, ATTACKS)
    fn = protocol_registry(protocol)[attack]
    check_counts(steps=steps, batch_size=batch_size)
    if epsilon is not None and not epsilon >= 0:
        raise ConfigError(f"epsilon must be None or >= 0; got {epsilon}")
    dev = check_attack_call(model, x, y, device)
    if indices is None:
        positions = torch.arange(x.shape[0])
    else:
        positions = torch.as_tensor(indices).reshape(-1).long().cpu()
        if positions.numel() != x.shape[0] or bool((positions < 0).any()):
            raise ConfigError(f"indices must hold one position >= 0 per sample ({x.shape[0]}); got "
                              f"{positions.numel()} values")
    work = work_device(dev)
    parts = []
    with trusted_inputs(model):  # x was checked once above; the candidates are clipped to [0, 1]
        ctx = AttackContext(model=model, steps=steps, epsilon=epsilon, seed=seed, device=dev,
                            batch_size=batch_size, queries=query_model(model, batch=max(batch_size, 512)))
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size].detach().to(work, torch.float32, copy=True)
            yb = y[start:start + batch_size].detach().to(work, torch.long, copy=True)
            parts.append(_attack_batch(ctx, fn, attack, protocol, xb, yb,
                                       positions[start:start + batch_size].to(work)))
    if not parts:
        return _empty(x, attack, protocol)
    return concat_results(parts)


def _attack_batch(ctx: AttackContext, fn: AttackFn, attack: str, protocol: str, x: Tensor, y: Tensor,
                  positions: Tensor) -> AttackResult:
    clean_correct = predict(ctx.model, x, ctx.eval_batch) == y
    x_adv = x.clone()
    found = torch.zeros_like(clean_correct)
    sel = clean_correct.nonzero().squeeze(1)
    if sel.numel():
        adv, ok = fn(ctx, x[sel], y[sel], positions[sel])
        x_adv[sel] = adv.detach().to(x.device, x.dtype).clamp(0.0, 1.0)
        found[sel] = ok.to(x.device, torch.bool)
    delta = (x_adv - x).flatten(1).double()
    if ctx.epsilon is not None:
        norm = delta.abs().amax(dim=1) if attack in LINF_ATTACKS else delta.norm(dim=1)
        found &= norm <= ctx.epsilon + _TOL
    success = clean_correct & found & (delta.abs().amax(dim=1) > 0)
    success &= predict(ctx.model, x_adv, ctx.eval_batch) != y
    x_adv = torch.where(success[:, None, None, None], x_adv, x)
    delta = (x_adv - x).flatten(1).double()
    fail = torch.where(clean_correct, torch.inf, 0.0).double()
    l2 = torch.where(success, delta.norm(dim=1), fail)
    linf = torch.where(success, delta.abs().amax(dim=1), fail)
    zero = torch.zeros_like(l2)
    return AttackResult(
        x_adv=x_adv.cpu(), success=success.cpu(), l2=l2.cpu(), clean_correct=clean_correct.cpu(),
        linf=linf.cpu(), mean_abs=torch.where(success, delta.abs().mean(dim=1), zero).cpu(),
        frac_changed=torch.where(success, (delta != 0).double().mean(dim=1), zero).cpu(),
        attack=attack, protocol=protocol)


def _empty(x: Tensor, attack: str, protocol: str) -> AttackResult:
    b = torch.zeros(0, dtype=torch.bool)
    f = torch.zeros(0, dtype=torch.float64)
    return AttackResult(x_adv=x.detach().float().cpu().clone(), success=b, l2=f,
                        clean_correct=b.clone(), linf=f.clone(), mean_abs=f.clone(),
                        frac_changed=f.clone(), attack=attack, protocol=protocol)
