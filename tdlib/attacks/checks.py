"""Argument checks and batched prediction shared by the attack modules."""

from __future__ import annotations

from numbers import Integral

import torch
from torch import Tensor, nn

from tdlib.errors import ConfigError, InputShapeError
from tdlib.models.base import check_labels, check_pixel_values, trusted_inputs

__all__ = ["check_attack_call", "check_counts", "check_eval_mode", "check_inputs", "model_device", "predict",
           "resolve_device", "work_device"]


def check_eval_mode(model: nn.Module) -> None:
    """Raise :class:`ConfigError` unless ``model`` (and every sub-module) is in eval mode."""
    if any(m.training for m in model.modules()):
        raise ConfigError(
            "the model is in training mode; call model.eval() before attacking it "
            "(BatchNorm/Dropout in training mode change the predictions on every query)"
        )


def check_inputs(x: Tensor, y: Tensor) -> None:
    """Check that ``x`` is a float (N, C, H, W) batch in [0, 1] and ``y`` matching int labels.

    Any floating dtype is accepted (the attacks compute in float32, as the models cast their
    inputs: ``torch.from_numpy`` of a float64 array works); numpy arrays and integer images are
    refused with the conversion to use.

    Raises:
        InputShapeError: wrong type, rank, dtype or length.
        InputValueError: NaN/inf or values outside [0, 1] (e.g. 0-255 or normalised images).
    """
    if not isinstance(x, Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise InputShapeError(f"attack inputs must be a float tensor (N, C, H, W); got {shape}"
                              + _numpy_hint(x))
    if not x.is_floating_point():
        raise InputShapeError(f"attack inputs must be floating point in [0, 1]; got {x.dtype}"
                              + ("; convert 0-255 images with x.float() / 255"
                                 if x.dtype == torch.uint8 else ""))
    check_pixel_values(x, "attack inputs", margin=0.0)
    if not isinstance(y, Tensor) or y.ndim != 1 or y.shape[0] != x.shape[0]:
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise InputShapeError(f"labels must be a 1-D tensor of length {x.shape[0]} (one per "
                              f"input); got {shape}" + _numpy_hint(y))
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise InputShapeError(f"labels must be integer class indices; got {y.dtype} "
                              "(convert them with y.long())")


def _numpy_hint(v: object) -> str:
    return "; convert it with torch.from_numpy(...)" if type(v).__module__ == "numpy" else ""


def check_counts(**counts: int) -> None:
    """Check that every keyword (``batch_size=...``, ``steps=...``) is an int >= 1.

    Raises:
        ConfigError: naming the first count that is not.
    """
    for what, v in counts.items():
        if isinstance(v, bool) or not isinstance(v, Integral) or v < 1:
            raise ConfigError(f"{what} must be an int >= 1; got {v!r}")


def check_attack_call(model: nn.Module, x: Tensor, y: Tensor,
                      device: torch.device | str | None) -> torch.device:
    """All checks of a public attack entry point on its model and data; returns the device.

    The model must be in eval mode, ``x``/``y`` pass :func:`check_inputs`, ``device`` matches the
    model, and the labels index the model's outputs (read from one forward of ``x[:1]``).

    Raises:
        ConfigError: model in training mode or on another device.
        InputShapeError: see :func:`check_inputs`; labels outside ``[0, num_outputs)``.
    """
    check_eval_mode(model)
    check_inputs(x, y)
    dev = resolve_device(model, device)
    if x.shape[0]:
        with torch.no_grad(), trusted_inputs(model):  # x was just checked
            logits = model(x[:1].detach().to(dev, torch.float32))
        check_labels(y, int(logits.shape[-1]), "attack labels")
    return dev


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


def model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter (None for a model without parameters)."""
    param = next(iter(model.parameters()), None)
    return None if param is None else param.device


def work_device(device: torch.device) -> torch.device:
    """Where an attack on a model on ``device`` keeps its images and builds its candidates: that
    device, or the CPU where it has no float64 (MPS), which the foolbox 2 arithmetic of the
    candidates needs; the model's forwards run on ``device`` in any case."""
    return torch.device("cpu") if device.type == "mps" else device


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 1024) -> Tensor:
    """Arg-max class of ``model`` on ``x`` (any number of samples), in chunks of ``batch_size``;
    each chunk runs on the model's device, the answer is on ``x``'s."""
    if x.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=x.device)
    dev = model_device(model) or x.device
    return torch.cat([model(x[i:i + batch_size].to(dev)).argmax(dim=1)
                      for i in range(0, x.shape[0], batch_size)]).to(x.device)
