"""Gradient (white-box) attacks: FGSM, L2 PGD / DDN and L2 Carlini-Wagner via foolbox 3.

With ``epsilon`` they are fixed-budget attacks inside that ball (Linf for FGSM, L2 otherwise).
Without it they search a per-sample minimal adversarial: FGSM scans e = k/steps along the
gradient sign (foolbox 2's GradientSignAttack), ``l2_pgd`` runs DDN, C&W its own minimisation.
``steps`` is the iteration count of PGD / DDN and of each of C&W's binary-search steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tdlib.attacks.base import AttackContext
from tdlib.attacks.fbox import import_foolbox, run_foolbox
from tdlib.attacks.scan import linear_scan

__all__ = ["CW_BINARY_SEARCH_STEPS", "cw", "fgsm", "l2_pgd"]

CW_BINARY_SEARCH_STEPS = 5


def _gradient_sign(ctx: AttackContext, x: Tensor, y: Tensor) -> Tensor:
    out = []
    for i in range(0, x.shape[0], ctx.batch_size):
        xb = x[i:i + ctx.batch_size].detach().to(ctx.device, copy=True).requires_grad_(True)
        loss = F.cross_entropy(ctx.model(xb), y[i:i + ctx.batch_size].to(ctx.device), reduction="sum")
        (grad,) = torch.autograd.grad(loss, xb)
        out.append(grad.sign().to(x.device))
    return torch.cat(out) if out else torch.zeros_like(x)


def fgsm(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """FGSM: foolbox 3 ``FGSM`` at Linf ``epsilon``, or a first-hit scan over e in (0, 1]."""
    if ctx.epsilon is not None:
        fb = import_foolbox()
        return run_foolbox(ctx, fb.attacks.FGSM(), x, y, index, epsilons=ctx.epsilon)
    sign = _gradient_sign(ctx, x, y)

    def make(sel: Tensor, k0: int, k1: int) -> tuple[Tensor, None]:
        e = torch.arange(k0 + 1, k1 + 1, device=x.device, dtype=x.dtype) / ctx.steps
        cand = x[sel].unsqueeze(1) + e[None, :, None, None, None] * sign[sel].unsqueeze(1)
        return cand.clamp(0.0, 1.0), None

    return linear_scan(ctx.qmodel, x, y, make, ctx.steps)


def l2_pgd(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """foolbox 3 ``L2PGD(steps)`` at L2 ``epsilon``; ``DDNAttack(steps)`` (minimal L2) without."""
    fb = import_foolbox()
    if ctx.epsilon is not None:
        return run_foolbox(ctx, fb.attacks.L2PGD(steps=ctx.steps), x, y, index,
                           epsilons=ctx.epsilon)
    return run_foolbox(ctx, fb.attacks.DDNAttack(steps=ctx.steps), x, y, index)


def cw(ctx: AttackContext, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """foolbox 3 ``L2CarliniWagnerAttack`` (5 binary-search steps x ``steps``), clipped to the
    L2 ``epsilon`` ball when one is given."""
    fb = import_foolbox()
    attack = fb.attacks.L2CarliniWagnerAttack(binary_search_steps=CW_BINARY_SEARCH_STEPS,
                                              steps=ctx.steps)
    return run_foolbox(ctx, attack, x, y, index, epsilons=ctx.epsilon)
