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

from tdlib.errors import CheckpointError, one_line
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


RESTART = "delete it to restart this run from scratch"


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    config_hash: str | None = None,
    signature: str | None = None,
    fix: str | None = None,
) -> dict[str, Any]:
    """Load a checkpoint safely and check that it belongs to this run.

    Args:
        path: the file.
        config_hash: expected config hash (``None``: not checked).
        signature: expected :func:`model_signature` (``None``: not checked).
        fix: what the user should do if the file is missing, unreadable or not a tdlib
            checkpoint (ends the message); default: delete it to restart the run.

    Raises:
        CheckpointError: missing/unreadable/truncated file, unsafe content, or a
            config/architecture mismatch.
    """
    p = Path(path)
    todo = fix or RESTART
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to load {str(p)!r}: it holds arbitrary Python objects, and tdlib only "
            f"loads tensors and plain data (torch.load(weights_only=True)). Details: {one_line(exc)}"
        ) from exc
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint {str(p)!r} does not exist"
                              + (f"; {fix}" if fix else "")) from exc
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint {str(p)!r} is unreadable (truncated or corrupted: {one_line(exc)}); {todo}"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(p)!r} is not a tdlib checkpoint (format {FORMAT!r} expected); {todo}"
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


def require(ckpt: dict[str, Any], key: str, kind: type | tuple[type, ...], path: str | os.PathLike[str],
            fix: str = RESTART) -> Any:
    """``ckpt[key]``, which must exist and be of type ``kind``.

    Raises:
        CheckpointError: naming the file and the missing or mistyped entry.
    """
    if key not in ckpt:
        raise CheckpointError(
            f"checkpoint {str(path)!r} lacks its {key!r} entry (written by another tdlib version, "
            f"or hand-edited); {fix}"
        )
    value = ckpt[key]
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        names = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
        raise CheckpointError(
            f"checkpoint {str(path)!r}: its {key!r} entry is of type {type(value).__name__}, "
            f"expected {names} (written by another tdlib version, or hand-edited); {fix}"
        )
    return value


def load_model_state(model: nn.Module, state: object, path: str | os.PathLike[str],
                     fix: str = RESTART) -> None:
    """``model.load_state_dict(state)`` after checking that ``state`` holds exactly the model's
    keys with the model's shapes.

    Raises:
        CheckpointError: naming the file and the first differences (missing or unexpected keys,
            tensors of another shape), instead of torch's multi-line RuntimeError.
    """
    expected = model.state_dict()
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {str(path)!r}: its weights are a {type(state).__name__}, "
                              f"not a state dict; {fix}")
    problems: list[str] = []
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        problems.append(f"{len(missing)} missing ({', '.join(map(str, missing[:3]))}"
                        f"{', ...' if len(missing) > 3 else ''})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({', '.join(map(str, unexpected[:3]))}"
                        f"{', ...' if len(unexpected) > 3 else ''})")
    for k, v in expected.items():
        got = state.get(k)
        if k in state and (not isinstance(got, torch.Tensor) or got.shape != v.shape):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            problems.append(f"{k} is {shape}, expected {tuple(v.shape)}")
            if len(problems) >= 5:
                break
    if problems:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit this model (written by another tdlib version, "
            f"or hand-edited): {'; '.join(problems)}; {fix}"
        )
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r}: cannot load its weights "
                              f"({one_line(exc)}); {fix}") from exc
