"""tdlib's ``paper`` protocol against foolbox 2.2.1 itself: same model, images and per-image seeds.

:func:`run_foolbox2` runs :mod:`benchmarks.foolbox2_ref` in a subprocess on the side environment
that ``scripts/setup_foolbox2.sh`` installs; :func:`run_tdlib` runs ``run_attack(protocol="paper")``
on the same inputs; :func:`compare` matches the two image for image and by distribution. Image ``i``
of foolbox 2 is seeded with ``sample_seed(seed, i)``, the seed tdlib gives that sample, so the random
attacks are comparable image for image too. Used by ``tests/attacks/test_foolbox2.py`` and the benchmark.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

REPO = Path(__file__).resolve().parent.parent
#: attacks without random draws (compared image for image in any case)
DETERMINISTIC = ("gaussian_blur", "contrast_reduction", "spatial", "shifts")
_SAME_TOL = 1e-5  # max |difference| of two adversarial images that count as the same


def side_env() -> Path | None:
    """The foolbox 2.2.1 folder (``$FOOLBOX2_DIR`` or ``.cache/foolbox2``) if it is installed."""
    path = Path(os.environ.get("FOOLBOX2_DIR", REPO / ".cache" / "foolbox2"))
    return path if (path / ".stamp").is_file() and (path / "foolbox").is_dir() else None


def per_image_seeds(seed: int, n: int) -> list[int]:
    """The per-sample seeds tdlib's ``paper`` attacks use for samples 0..n-1 under ``seed``."""
    from tdlib.attacks.streams import sample_seed

    return [sample_seed(seed, i) for i in range(n)]


def run_foolbox2(model: nn.Module, x: Tensor, y: Tensor, attacks: Sequence[str], *, seed: int = 0,
                 mode: str = "per_image", threads: int = 1, timeout: float | None = None) -> dict[str, Any]:
    """foolbox 2.2.1 results: per attack ``perturbed`` (N, C, H, W; NaN = failure), ``linf``, ``queries``
    and ``seconds``; plus ``versions``.

    Raises:
        FileNotFoundError: the side environment is not installed (run scripts/setup_foolbox2.sh).
        RuntimeError: the reference process failed.
    """
    env_dir = side_env()
    if env_dir is None:
        raise FileNotFoundError("foolbox 2.2.1 is not installed: run `bash scripts/setup_foolbox2.sh`")
    with tempfile.TemporaryDirectory(prefix="foolbox2-") as tmp:
        spec, out = Path(tmp) / "in.pt", Path(tmp) / "out.npz"
        torch.save({"model": model.cpu().eval(), "x": x.detach().cpu().float(), "y": y.detach().cpu().long(),
                    "seeds": per_image_seeds(seed, len(x)), "attacks": list(attacks), "mode": mode,
                    "threads": threads, "num_classes": int(_num_classes(model, x))}, spec)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(env_dir), str(REPO)]),
               "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        proc = subprocess.run([sys.executable, "-m", "benchmarks.foolbox2_ref", str(spec), str(out)],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"foolbox 2 reference failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        with np.load(out) as data:
            raw = {k: data[k] for k in data.files}
    res: dict[str, Any] = {"versions": [str(v) for v in raw.pop("versions")]}
    for name in attacks:
        res[name] = {k: raw[f"{name}/{k}"] for k in ("perturbed", "linf", "queries")}
        res[name]["seconds"] = float(raw[f"{name}/seconds"])
    return res


def _num_classes(model: nn.Module, x: Tensor) -> int:
    with torch.no_grad():
        return int(model.eval()(x[:1].float()).shape[1])


@contextlib.contextmanager
def _count_queries() -> Iterator[list[int]]:
    """Count the candidates tdlib's scans send to the model (``QueryModel.predict``)."""
    from tdlib.attacks.queries import QueryModel

    count = [0]
    real = QueryModel.predict

    def counted(self: QueryModel, x: Tensor) -> Tensor:
        count[0] += int(x.shape[0])
        return real(self, x)

    QueryModel.predict = counted  # type: ignore[method-assign]
    try:
        yield count
    finally:
        QueryModel.predict = real  # type: ignore[method-assign]


def run_tdlib(model: nn.Module, x: Tensor, y: Tensor, attacks: Sequence[str], *,
              seed: int = 0) -> dict[str, Any]:
    """``run_attack(protocol="paper")`` on all images in one batch: per attack ``x_adv``, ``success``,
    ``l2``, ``linf`` (numpy), ``seconds`` and ``queries`` (candidates classified)."""
    from tdlib.attacks import run_attack

    res: dict[str, Any] = {}
    for name in attacks:
        with _count_queries() as count:
            t0 = time.perf_counter()
            r = run_attack(model, x, y, name, protocol="paper", seed=seed, batch_size=max(len(x), 1))
            seconds = time.perf_counter() - t0
        res[name] = {"x_adv": r.x_adv.numpy(), "success": r.success.numpy(), "l2": r.l2.numpy(),
                     "linf": r.linf.numpy(), "seconds": seconds, "queries": count[0]}
    return res


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic of two samples of L2 (inf = failure) values."""
    if a.size == 0 or b.size == 0:
        return 0.0 if a.size == b.size else 1.0
    a, b = np.round(a, 6), np.round(b, 6)  # the same adversarial computed twice differs by rounding
    grid = np.concatenate([a, b])
    fa = np.searchsorted(np.sort(a), grid, side="right") / a.size
    fb = np.searchsorted(np.sort(b), grid, side="right") / b.size
    return float(np.abs(fa - fb).max())


def compare(x: Tensor, ref: dict[str, Any], ours: dict[str, Any], attacks: Sequence[str]) -> list[dict[str, Any]]:
    """Per attack: image-for-image agreement and the L2 distributions of both sides.

    An image agrees when both fail, or both succeed with adversarials within 1e-5 of each other.
    ``ks`` is the two-sample Kolmogorov-Smirnov statistic of the per-image L2 (failures = inf).
    """
    x_np = x.detach().cpu().float().numpy()
    rows = []
    for name in attacks:
        fb, td = ref[name], ours[name]
        fb_ok = np.isfinite(fb["linf"]) & (fb["linf"] > 0)
        fb_img = np.where(fb_ok[:, None, None, None], np.nan_to_num(fb["perturbed"]), x_np)
        fb_l2 = np.where(fb_ok, np.sqrt(((fb_img.astype(np.float64) - x_np) ** 2).reshape(len(x_np), -1).sum(1)),
                         np.inf)
        td_ok = td["success"].astype(bool)
        td_l2 = np.where(td_ok, td["l2"], np.inf)
        gap = np.abs(fb_img - td["x_adv"]).reshape(len(x_np), -1).max(axis=1)
        same = (fb_ok == td_ok) & (~fb_ok | (gap <= _SAME_TOL))
        rows.append({
            "attack": name, "n": len(x_np), "deterministic": name in DETERMINISTIC,
            "foolbox2_found": int(fb_ok.sum()), "tdlib_found": int(td_ok.sum()), "same": int(same.sum()),
            "differing": np.flatnonzero(~same).tolist(),
            "foolbox2_median_l2": float(np.median(fb_l2)), "tdlib_median_l2": float(np.median(td_l2)),
            "ks": _ks(fb_l2, td_l2), "foolbox2_queries": int(fb["queries"].sum()),
            "tdlib_queries": int(td.get("queries", -1)),
            "foolbox2_s": float(fb["seconds"]), "tdlib_s": float(td["seconds"]),
            "speedup": float(fb["seconds"]) / max(float(td["seconds"]), 1e-9),
        })
    return rows
