"""Checkpoints: atomic writes, safe loads (``weights_only=True``), config checks.

A checkpoint is a plain dict of tensors and primitives, so it loads with ``weights_only=True``; a
file carrying arbitrary pickled objects is refused. Each one records the config hash and the model
signature (backbone, variant, state-dict keys and shapes) it was written for; a mismatch is refused
with a message that says what differs and what to do.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tdlib.errors import CheckpointError
from tdlib.io import atomic_write_bytes

FORMAT = "tdlib-checkpoint-v1"


def model_signature(model: nn.Module) -> str:
    """Hash of the model's state-dict keys and shapes (its architecture, not its weights)."""
    text = ";".join(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus the format tag) atomically."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    config_hash: str | None = None,
    signature: str | None = None,
) -> dict[str, Any]:
    """Load a checkpoint safely and check that it belongs to this run.

    Args:
        path: the file.
        config_hash: expected config hash (``None``: not checked).
        signature: expected :func:`model_signature` (``None``: not checked).

    Raises:
        CheckpointError: unreadable/truncated file, unsafe content, or a config/architecture
            mismatch.
    """
    p = Path(path)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to load {str(p)!r}: it holds arbitrary Python objects, and tdlib only "
            f"loads tensors and plain data (torch.load(weights_only=True)). Details: {exc}"
        ) from exc
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint {str(p)!r} does not exist") from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {str(p)!r} is unreadable (truncated or corrupted: {exc}); delete it to "
            "restart this run from scratch"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(p)!r} is not a tdlib checkpoint (format {FORMAT!r} expected)"
        )
    if config_hash is not None and ckpt.get("config_hash") != config_hash:
        raise CheckpointError(
            f"checkpoint {str(p)!r} was written for config {ckpt.get('config_hash')!r} "
            f"({ckpt.get('describe', 'unknown')}), not for this run's config {config_hash!r}; "
            "use the run folder of that config, or delete the checkpoint to retrain"
        )
    if signature is not None and ckpt.get("signature") != signature:
        raise CheckpointError(
            f"checkpoint {str(p)!r} holds another architecture ({ckpt.get('describe', 'unknown')}:"
            f" signature {ckpt.get('signature')!r}, expected {signature!r}); build the model it "
            "was saved from, or retrain"
        )
    return ckpt
