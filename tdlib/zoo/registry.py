"""Loading, evaluating and verifying the zoo's models."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from tdlib.attacks.queries import query_model
from tdlib.bitstring import bits, unbits
from tdlib.config import config_hash
from tdlib.data import load_dataset
from tdlib.data.datasets import SPECS
from tdlib.errors import UnknownNameError
from tdlib.io import default_runs_root, read_json, write_json
from tdlib.models import build_model
from tdlib.zoo.manifest import ZooEntry, ZooError, read_entries, sha256_file, zoo_dir
from tdlib.zoo.plan import plan_entry

__all__ = [
    "VERIFY_TOLERANCE",
    "EvalResult",
    "evaluate_entry",
    "find_entry",
    "load_entry",
    "load_pretrained",
    "verify",
]

#: |accuracy − manifest| (points) that ``zoo verify`` accepts: float results of another CPU may
#: flip a borderline image or two.
VERIFY_TOLERANCE = 0.05


def find_entry(dataset: str, backbone: str, variant: str, seed: int = 0,
               root: str | os.PathLike[str] | None = None) -> ZooEntry:
    """The manifest of (``dataset``, ``backbone``, ``variant``, ``seed``).

    Raises:
        UnknownNameError: the zoo holds no such model (the message lists what it holds).
    """
    entries = read_entries(root)
    for e in entries:
        if e.key == (dataset, backbone, variant, seed):
            return e
    raise UnknownNameError(f"pretrained model (zoo folder {zoo_dir(root)})",
                           f"{dataset}-{backbone}-{variant}-s{seed}", [e.name for e in entries])


def _build(entry: ZooEntry) -> nn.Module:
    spec = SPECS[entry.dataset]
    c, h, _ = spec.input_shape
    h = _image_size(entry) or h
    model = entry.config.get("model", {})
    return build_model(entry.backbone, entry.variant, spec.num_classes, in_channels=c,
                       input_size=h, pyramid=model.get("pyramid", "gaussian"),
                       merge=model.get("merge", "add_concat"))


def _image_size(entry: ZooEntry) -> int | None:
    """The input size the entry was trained at, where the dataset has several (Imagenette)."""
    size = entry.config.get("data", {}).get("image_size")
    return int(size) if size is not None else None


def load_entry(entry: ZooEntry, root: str | os.PathLike[str] | None = None,
               device: str | torch.device = "cpu") -> nn.Module:
    """Build the entry's model and load its weights (sha256-checked first), in eval mode.

    Raises:
        ZooError: the weights file is missing, its sha256 or size differs from the manifest
            (tampered or corrupted), or its tensors do not fit the architecture.
    """
    path = entry.weights_path(zoo_dir(root))
    if not path.is_file():
        raise ZooError(f"zoo weights {path} are missing; restore them (git checkout / git lfs "
                       f"pull) or retrain: {entry.command}")
    digest = sha256_file(path)
    if digest != entry.sha256 or path.stat().st_size != entry.bytes:
        raise ZooError(
            f"refusing to load {path}: its sha256 {digest[:16]}… ({path.stat().st_size} bytes) does "
            f"not match the manifest's {entry.sha256[:16]}… ({entry.bytes} bytes): the file was "
            f"modified or corrupted. Restore it with `git checkout -- {path.name}` or retrain it "
            f"with `{entry.command}`"
        )
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ZooError(f"zoo weights {path} are unreadable: {exc}") from exc
    model = _build(entry)
    expected = model.state_dict()
    bad = sorted(k for k in expected if k not in state or state[k].shape != expected[k].shape)
    extra = sorted(k for k in state if k not in expected)
    if bad or extra:
        raise ZooError(f"zoo weights {path} do not fit {entry.backbone}/{entry.variant}: "
                       f"missing or mis-shaped {bad[:5]}, unexpected {extra[:5]}")
    model.load_state_dict(state)
    return model.to(device).eval()


def load_pretrained(dataset: str, backbone: str, variant: str, seed: int = 0, *,
                    device: str | torch.device = "cpu",
                    root: str | os.PathLike[str] | None = None) -> nn.Module:
    """A pretrained zoo model in eval mode.

    Example:
        >>> from tdlib.zoo import load_pretrained
        >>> model = load_pretrained("mnist", "lenetfc", "bu")
        >>> model.training, model.input_shape
        (False, (1, 28, 28))

    Raises:
        UnknownNameError: no such model in the zoo (the message lists the entries).
        ZooError: its weights file is missing, tampered with or does not fit.
    """
    return load_entry(find_entry(dataset, backbone, variant, seed, root), root, device)


@dataclass(frozen=True)
class EvalResult:
    """A zoo model's predictions on the full official test set."""

    entry: str
    accuracy: float  # %
    n: int
    correct: np.ndarray  # (n,) bool, test-set order
    predictions_sha256: str


def _cache_path(entry: ZooEntry, runs_root: str | os.PathLike[str] | None) -> Path:
    base = Path(runs_root).expanduser() if runs_root is not None else default_runs_root()
    return base / "zoo" / f"{entry.name}-{entry.sha256[:12]}.json"


@torch.no_grad()
def evaluate_entry(entry: ZooEntry, *, root: str | os.PathLike[str] | None = None,
                   data_root: str | None = None, runs_root: str | os.PathLike[str] | None = None,
                   use_cache: bool = True, device: str = "cpu") -> EvalResult:
    """Predict the full official test set with a zoo model.

    The answer is cached per weights file (sha256) under ``<runs>/zoo/``; ``use_cache=False``
    recomputes (``zoo verify`` does).
    """
    if use_cache and entry.correct:  # recorded in the manifest (zoo verify recomputes it)
        correct = unbits(entry.correct)
        return EvalResult(entry.name, entry.test_accuracy, entry.test_images, correct,
                          entry.predictions_sha256)
    cache = _cache_path(entry, runs_root)
    if use_cache and cache.is_file():
        try:
            c = read_json(cache)
            correct = unbits(c["correct"])
            return EvalResult(entry.name, float(c["accuracy"]), int(c["n"]), correct,
                              str(c["predictions_sha256"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache is recomputed
    model = load_entry(entry, root, device)
    size = _image_size(entry)
    extra = {"image_size": size, "resize_size": size} if size is not None else {}
    data = load_dataset(entry.dataset, root=data_root, test_per_class=None, train_per_class=1,
                        **extra)
    x, y = data.test.images(), data.test.y
    if model.training:  # pragma: no cover - load_entry returns eval mode
        model.eval()
    # the model itself under inference_mode, in fixed-size batches (the attacks' query path)
    qm = query_model(model, batch=500)
    pred = torch.cat([qm.predict(x[s : s + 500].to(device)).cpu() for s in range(0, len(y), 500)])
    correct = (pred == y).numpy()
    digest = hashlib.sha256(pred.numpy().astype(np.int64).tobytes()).hexdigest()
    result = EvalResult(entry.name, 100.0 * float(correct.mean()), len(y), correct, digest)
    write_json(cache, {"entry": entry.name, "sha256": entry.sha256, "accuracy": result.accuracy,
                       "n": result.n, "correct": bits(correct), "predictions_sha256": digest})
    return result


def verify(*, root: str | os.PathLike[str] | None = None, data_root: str | None = None,
           only: str | None = None, device: str = "cpu") -> list[dict[str, Any]]:
    """Check every entry: the weights' sha256 and size, and the full-test-set accuracy recomputed
    against the manifest (within :data:`VERIFY_TOLERANCE` points).

    Returns:
        One row per entry (``ok`` True/False with the reason); raises nothing for a failed check
        so that every entry is reported.
    """
    rows = []
    for e in read_entries(root):
        if only and not any(fnmatch.fnmatch(e.name, p.strip()) for p in only.split(",")):
            continue
        row: dict[str, Any] = {"entry": e.name, "manifest_accuracy": e.test_accuracy,
                               "test_images": e.test_images}
        try:
            res = evaluate_entry(e, root=root, data_root=data_root, use_cache=False, device=device)
            row["accuracy"] = res.accuracy
            row["predictions_match"] = res.predictions_sha256 == e.predictions_sha256
            problems = []
            if abs(res.accuracy - e.test_accuracy) > VERIFY_TOLERANCE:
                problems.append(f"accuracy {res.accuracy:.2f}% differs from the manifest's "
                                f"{e.test_accuracy:.2f}%")
            if res.n != e.test_images:
                problems.append(f"{res.n} test images, the manifest says {e.test_images}")
            if e.correct and bits(res.correct) != e.correct:
                problems.append("the per-image correctness differs from the manifest's record")
            recorded = plan_entry(e.name).config(None) if e.name else None
            if recorded is not None and config_hash(recorded) != e.config_hash:
                problems.append(f"the plan's recipe hashes to {config_hash(recorded)}, the "
                                f"manifest records {e.config_hash}")
            row["ok"] = not problems
            row["reason"] = "; ".join(problems) or "sha256, size and accuracy as recorded"
        except (ZooError, UnknownNameError) as exc:
            row.update(ok=False, reason=str(exc))
        rows.append(row)
    return rows


def manifest_json(entry: ZooEntry) -> str:
    """The manifest as pretty JSON (for ``zoo list --json``)."""
    return json.dumps(entry.to_json(), indent=2, sort_keys=True)
