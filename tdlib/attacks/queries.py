"""Forward passes for the attack scans: the model itself, in inference mode, in bucketed chunks.

A scan asks the model about hundreds of thousands of candidates and only needs the arg-max.
:class:`QueryModel` runs the model as it is (eval mode, ``torch.inference_mode``, on whatever
device it lives on) over chunks of candidates whose sizes are rounded up to a few buckets
(:func:`bucket`). No copy or rewrite of the model is made, so every query is answered by the same
function that foolbox 2.2.1 queries, and the attacks agree with it image for image.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tdlib.attacks.checks import model_device

__all__ = ["QueryModel", "bucket", "query_model"]


def bucket(n: int) -> int:
    """The padded batch size of a forward of ``n`` rows: ``n`` rounded up to a multiple of
    ``max(4, 2 ** (floor(log2 n) - 3))`` (eight sizes per octave)."""
    step = max(4, 1 << max(0, n.bit_length() - 4))
    return -(-n // step) * step


class QueryModel:
    """Arg-max classifier over many candidates: ``model`` in inference mode, in chunks of ``batch``.

    The model must be in eval mode (the attack entry points check it). Each forward's batch is
    padded (with copies of its last row) to :func:`bucket` size: oneDNN builds a kernel for every
    new input shape (3.3 ms more than a repeated size for a LeNetFC-TD forward of 150-230 images
    on one CPU thread, 12%), and the scans' rounds come in every size (108 distinct ones in a
    Pointwise run on 90 images), more than its primitive cache holds. Buckets keep 40 sizes up to
    512, for 4% padded rows on average (at most 1/8 from 32 rows on). The padded rows' answers
    are dropped (an eval-mode model classifies every row on its own).
    """

    def __init__(self, model: nn.Module, *, batch: int = 512) -> None:
        self.model = model
        self.batch = batch
        self.device = model_device(model)  # where the forwards run (None: wherever x is)
        self.queries = 0  # candidates classified so far

    def logits(self, x: Tensor) -> Tensor:
        """Logits of ``x`` (N, C, H, W), one forward on the model's device, no gradients."""
        with torch.inference_mode():
            out: Tensor = self.model(x.to(self.device or x.device))
        return out

    def predict(self, x: Tensor) -> Tensor:
        """Arg-max class of every row of ``x`` (N, C, H, W), on ``x``'s device (the forwards run
        on the model's)."""
        self.queries += int(x.shape[0])
        if x.shape[0] == 0:
            return torch.zeros(0, dtype=torch.long, device=x.device)
        with torch.inference_mode():
            return torch.cat([self._argmax(x[i:i + self.batch]) for i in range(0, x.shape[0], self.batch)])

    def _argmax(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        pad = bucket(n) - n
        if pad:
            x = torch.cat([x, x[-1:].expand(pad, *x.shape[1:])])
        out: Tensor = self.model(x.to(self.device or x.device)).argmax(dim=1)
        return out[:n].to(x.device)

    def misclassified(self, x: Tensor, y: Tensor) -> Tensor:
        """(N,) bool: ``x[i]`` is not classified as ``y[i]``."""
        return self.predict(x) != y


def query_model(model: nn.Module, *, batch: int = 512) -> QueryModel:
    """The :class:`QueryModel` of ``model`` (eval mode) with forwards of at most ``batch`` rows."""
    return QueryModel(model, batch=batch)
