"""``run_attack``: one attack on a labelled batch, with the paper's per-sample bookkeeping."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tdlib.attacks.base import PROTOCOLS, AttackContext
from tdlib.attacks.checks import check_attack_call, check_counts, predict
from tdlib.attacks.queries import query_model
from tdlib.attacks.registry import ATTACKS, LINF_ATTACKS
from tdlib.attacks.result import AttackResult, concat_results
from tdlib.errors import ConfigError, check_name
from tdlib.models.base import trusted_inputs

__all__ = ["run_attack"]

_TOL = 1e-5  # float32 slack when checking a norm bound


def run_attack(model: nn.Module, x: Tensor, y: Tensor, attack: str, *, protocol: str = "paper",
               seed: int = 0, batch_size: int = 128, device: torch.device | str | None = None,
               steps: int = 1000, epsilon: float | None = None) -> AttackResult:
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
        protocol: ``"paper"`` (foolbox 2.2.1 semantics) or ``"minimal"`` (per-sample minimal L2).
        seed: seed of all random draws; re-implemented attacks key it by sample index, so their
            results do not depend on ``batch_size``.
        batch_size: samples attacked together.
        device: where to attack; default the model's device (must match it).
        steps: linear-scan steps (1000 as in foolbox 2) or white-box iterations.
        epsilon: norm bound (Linf for ``fgsm``, L2 otherwise). White-box attacks search inside it;
            for the other attacks adversarials farther than ``epsilon`` (L2) count as failures.

    Returns:
        The :class:`AttackResult` (tensors on the CPU).

    Raises:
        UnknownNameError: unknown ``attack`` or ``protocol``.
        ConfigError: model in training mode, bad ``steps`` / ``batch_size`` / ``epsilon`` / device.
        InputShapeError: ``x`` not a floating (N, C, H, W) tensor, or ``y`` not matching integer
            labels inside the model's outputs.
        InputValueError: NaN/inf in ``x`` or values outside [0, 1] (subclass of InputShapeError).

    All of these are raised before the first attack query; the queries themselves then skip the
    models' per-forward value checks (:func:`~tdlib.models.base.trusted_inputs`).
    """
    check_name("attack", attack, ATTACKS)
    check_name("protocol", protocol, PROTOCOLS)
    check_counts(steps=steps, batch_size=batch_size)
    if epsilon is not None and not epsilon >= 0:
        raise ConfigError(f"epsilon must be None or >= 0; got {epsilon}")
    dev = check_attack_call(model, x, y, device)
    parts = []
    with trusted_inputs(model):  # x was checked once above; the candidates are clipped to [0, 1]
        queries = query_model(model, x[:8].detach().to(dev, torch.float32),
                              batch=max(batch_size, 512))
        for start in range(0, x.shape[0], batch_size):
            ctx = AttackContext(model=model, protocol=protocol, steps=steps, epsilon=epsilon,
                                seed=seed, device=dev, batch_size=batch_size, queries=queries)
            xb = x[start:start + batch_size].detach().to(dev, torch.float32, copy=True)
            yb = y[start:start + batch_size].detach().to(dev, torch.long, copy=True)
            parts.append(_attack_batch(ctx, attack, xb, yb, start))
    if not parts:
        return _empty(x, attack, protocol)
    return concat_results(parts)


def _attack_batch(ctx: AttackContext, attack: str, x: Tensor, y: Tensor,
                  start: int) -> AttackResult:
    clean_correct = predict(ctx.model, x, ctx.eval_batch) == y
    x_adv = x.clone()
    found = torch.zeros_like(clean_correct)
    sel = clean_correct.nonzero().squeeze(1)
    if sel.numel():
        adv, ok = ATTACKS[attack](ctx, x[sel], y[sel], sel + start)
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
        attack=attack, protocol=ctx.protocol)


def _empty(x: Tensor, attack: str, protocol: str) -> AttackResult:
    b = torch.zeros(0, dtype=torch.bool)
    f = torch.zeros(0, dtype=torch.float64)
    return AttackResult(x_adv=x.detach().float().cpu().clone(), success=b, l2=f,
                        clean_correct=b.clone(), linf=f.clone(), mean_abs=f.clone(),
                        frac_changed=f.clone(), attack=attack, protocol=protocol)
