"""Fourier sensitivity heat map (Yin et al., NeurIPS 2019): error under single-frequency noise."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tdlib.attacks.checks import check_attack_call, check_counts, predict
from tdlib.errors import ConfigError, InputShapeError
from tdlib.models.base import trusted_inputs

__all__ = ["fourier_basis", "fourier_sensitivity"]


def fourier_basis(h: int, w: int, i: int, j: int) -> Tensor:
    """Real (H, W) Fourier basis image of frequency (i, j) (unshifted indices), unit L2 norm."""
    spec = torch.zeros(h, w, dtype=torch.complex128)
    spec[i % h, j % w] = 1.0
    spec[-i % h, -j % w] = 1.0  # conjugate partner -> real image
    img = torch.fft.ifft2(spec).real
    norm = img.norm()
    if norm == 0:  # cannot happen for integer frequencies, kept for safety
        raise ConfigError(f"degenerate Fourier basis ({i}, {j}) for size {h}x{w}")
    return (img / norm).float()


@torch.no_grad()
def fourier_sensitivity(model: nn.Module, x: Tensor, y: Tensor, *, size: int | None = None,
                        eps: float = 4.0, batch_size: int = 128,
                        device: torch.device | str | None = None, seed: int = 0) -> Tensor:
    """Error rate of ``model`` under x + eps * r * U_ij (clipped to [0, 1]) per frequency (i, j).

    As in Yin et al. (2019): U_ij is the real Fourier basis image of unit L2 norm; each sample and
    channel gets a random sign r, and the channels share the norm so the whole perturbation has L2
    norm ``eps`` before clipping. Frequencies are centred (``fftshift`` layout: the centre of the
    map is the constant component, the borders the highest frequencies).

    Args:
        model: classifier in eval mode on [0, 1] inputs.
        x: (N, C, H, W) inputs in [0, 1] (N >= 1; any floating dtype, evaluated in float32).
        y: (N,) integer labels.
        size: evaluate only the ``size`` x ``size`` lowest frequencies around the centre (cheap
            preview); None = all H x W.
        eps: L2 norm of each perturbation in [0, 1] pixel space.
        batch_size: forward-pass batch size.
        device: default the model's device.
        seed: seed of the random signs.

    Returns:
        (size, size) (or (H, W)) float tensor of error rates in [0, 1] over all N samples, CPU.

    Raises:
        ConfigError: model in training mode or on another device; bad ``size``, ``eps`` or
            ``batch_size``.
        InputShapeError: ``x`` empty or not a floating (N, C, H, W) tensor; ``y`` not matching
            integer labels inside the model's outputs.
        InputValueError: NaN/inf in ``x`` or values outside [0, 1] (subclass of InputShapeError).
    """
    check_counts(batch_size=batch_size, **({} if size is None else {"size": size}))
    if not 0 <= eps < math.inf:
        raise ConfigError(f"eps must be a finite L2 norm >= 0; got {eps!r}")
    dev = check_attack_call(model, x, y, device)
    if x.shape[0] == 0:
        raise InputShapeError("fourier_sensitivity needs at least one image (an error rate over "
                              "no images is undefined); pass a non-empty batch")
    n, c, h, w = x.shape
    rows, cols = (h, w) if size is None else (min(size, h), min(size, w))
    gen = torch.Generator().manual_seed(seed)
    signs = (torch.randint(0, 2, (n, c, 1, 1), generator=gen) * 2 - 1).float().to(dev)
    xd, yd = x.detach().float().to(dev), y.detach().to(dev)
    r0, c0 = h // 2 - rows // 2, w // 2 - cols // 2  # top-left of the window in shifted layout
    freqs = [(r0 + a - h // 2, c0 + b - w // 2) for a in range(rows) for b in range(cols)]  # signed
    # U_ij and U_-i-j are the same real image (conjugate pair): evaluate each pair once
    key = [min((i % h, j % w), (-i % h, -j % w)) for i, j in freqs]
    unique = sorted(set(key))
    errors = torch.zeros(len(unique))
    # many frequencies per forward pass: (F, N) perturbed images at a time
    per_chunk = max(1, (max(batch_size, 1024)) // max(n, 1))
    with trusted_inputs(model):  # x was checked once above; the perturbed images are clipped
        for f0 in range(0, len(unique), per_chunk):
            chunk = unique[f0:f0 + per_chunk]
            bases = torch.stack([fourier_basis(h, w, i, j) for i, j in chunk]).to(dev) * (eps / math.sqrt(c))
            xp = (xd[None] + signs[None] * bases[:, None, None]).clamp(0.0, 1.0)  # (F, N, C, H, W)
            pred = predict(model, xp.reshape(-1, c, h, w), max(batch_size, 1024)).view(len(chunk), n)
            errors[f0:f0 + len(chunk)] = (pred != yd[None]).float().mean(1).cpu()
    index = {k: t for t, k in enumerate(unique)}
    return errors[[index[k] for k in key]].view(rows, cols)
