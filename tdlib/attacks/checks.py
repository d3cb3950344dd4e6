"""Argument checks and batched prediction shared by the attack modules."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tdlib.errors import ConfigError, InputShapeError

__all__ = ["check_eval_mode", "check_inputs", "predict", "resolve_device"]


def check_eval_mode(model: nn.Module) -> None:
    """Raise :class:`ConfigError` unless ``model`` (and every sub-module) is in eval mode."""
    if any(m.training for m in model.modules()):
        raise ConfigError(
            "the model is in training mode; call model.eval() before attacking it "
            "(BatchNorm/Dropout in training mode change the predictions on every query)"
        )


def check_inputs(x: Tensor, y: Tensor) -> None:
    """Check that ``x`` is a float (N, C, H, W) batch in [0, 1] and ``y`` matching int labels.

    Raises:
        InputShapeError: wrong rank, dtype, length or values outside [0, 1].
    """
    if not isinstance(x, Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise InputShapeError(f"attack inputs must be a float tensor (N, C, H, W); got {shape}")
    if not x.is_floating_point():
        raise InputShapeError(f"attack inputs must be floating point in [0, 1]; got {x.dtype}")
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise InputShapeError("attack inputs contain NaN or inf; expected values in [0, 1]")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise InputShapeError(
            f"attack inputs must lie in [0, 1] pixel space (normalisation belongs inside the "
            f"model); got min {float(x.min()):.4g}, max {float(x.max()):.4g}"
        )
    if not isinstance(y, Tensor) or y.ndim != 1 or y.shape[0] != x.shape[0]:
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise InputShapeError(f"labels must be a 1-D tensor of length {x.shape[0]}; got {shape}")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise InputShapeError(f"labels must be integer class indices; got {y.dtype}")


def resolve_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    """The device to attack on: ``device``, or the model's parameter device (CPU if none).

    Raises:
        ConfigError: ``device`` differs from the device that holds the model's parameters.
    """
    param = next(iter(model.parameters()), None)
    model_dev = param.device if param is not None else torch.device("cpu")
    if device is None:
        return model_dev
    dev = torch.device(device)
    if param is not None and (dev.type != model_dev.type or
                              (dev.index is not None and dev.index != model_dev.index)):
        raise ConfigError(f"device {dev} differs from the model's device {model_dev}; move the "
                          "model first (model.to(device))")
    return model_dev if param is not None else dev


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 1024) -> Tensor:
    """Arg-max class of ``model`` on ``x`` (any number of samples), in chunks of ``batch_size``."""
    if x.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=x.device)
    return torch.cat([model(x[i:i + batch_size]).argmax(dim=1)
                      for i in range(0, x.shape[0], batch_size)])
