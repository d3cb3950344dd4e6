"""What an attack's adversarials do at each input scale of a TD network (supplement Fig 3).

A TD network reads a pyramid of its input (full, half and quarter resolution). Its multi-input copy
(``model.forward_multi``) takes the three levels separately, so the adversarial found against the
single-input network can be fed to some levels while the others see the clean image: which inputs
carry the vulnerability.
"""

from __future__ import annotations

import torch

from tdlib.attacks.result import AttackResult
from tdlib.errors import ConfigError
from tdlib.models.base import TDLibModel

__all__ = ["SCALE_SUBSETS", "scale_perturbation", "scale_removal", "supports_scales"]

#: Input subsets of the per-scale study (supplement Fig 3); index 0 = full resolution.
SCALE_SUBSETS: dict[str, tuple[int, ...]] = {
    "high": (0,), "medium": (1,), "low": (2,),
    "high-medium": (0, 1), "high-low": (0, 2), "medium-low": (1, 2), "all": (0, 1, 2),
}


def supports_scales(model: torch.nn.Module) -> bool:
    """True for a 3-scale TD model with a multi-input copy (LeNetFC, NIN-light, NIN, ResNet32)."""
    return int(getattr(model, "num_scales", 1)) == 3 and hasattr(model, "forward_multi")


@torch.no_grad()
def scale_perturbation(model: TDLibModel, x: torch.Tensor, y: torch.Tensor, result: AttackResult,
                       *, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Per-image correctness of a TD model when only some pyramid inputs see the adversarial.

    The adversarials of ``result`` (found against the single-input model; the clean image where
    the attack failed) go to the inputs of each subset in :data:`SCALE_SUBSETS`, the clean image to
    the others, through ``model.forward_multi``.

    Returns:
        subset name (and ``"clean"``) -> (N,) bool tensor.
    """
    n_scales = int(getattr(model, "num_scales", 1))
    if not supports_scales(model):
        raise ConfigError("scale_perturbation needs a 3-scale TD model (lenetfc/nin_light/nin/resnet32)")
    model.eval()
    device = next(model.parameters()).device
    x_adv = torch.where(result.success[:, None, None, None], result.x_adv, x)
    out: dict[str, torch.Tensor] = {}
    for name, subset in {"clean": (), **SCALE_SUBSETS}.items():
        preds = []
        for s in range(0, len(y), batch_size):
            xc, xa = x[s : s + batch_size].to(device), x_adv[s : s + batch_size].to(device)
            preds.append(model.forward_multi([xa if i in subset else xc for i in range(n_scales)])
                         .argmax(1).cpu())
        out[name] = (torch.cat(preds) == y) if preds else torch.zeros(0, dtype=torch.bool)
    return out


@torch.no_grad()
def scale_removal(model: TDLibModel, x: torch.Tensor, y: torch.Tensor,
                  *, batch_size: int = 256) -> dict[str, float]:
    """Accuracy (%) with each side branch silenced in turn (``model.silence(scale)``)."""
    model.eval()
    device = next(model.parameters()).device

    def acc() -> float:
        pred = torch.cat([model(x[s : s + batch_size].to(device)).argmax(1).cpu()
                          for s in range(0, len(y), batch_size)])
        return 100.0 * float((pred == y).float().mean())

    names = {0: "high", 1: "medium", 2: "low"}
    out = {"none": acc()}
    for scale in range(int(getattr(model, "num_scales", 1)) - 1):
        with model.silence(scale):
            out[names.get(scale, str(scale))] = acc()
    return out
