"""Reference runner: the paper's ten attacks with foolbox 2.2.1 itself (run in the side environment).

Runs in a subprocess whose ``PYTHONPATH`` starts with the folder ``scripts/setup_foolbox2.sh`` filled
(foolbox 2.2.1 and numpy 1.26.4); torch and scipy come from the project's venv. Do not import it in
the main environment except for :func:`import_foolbox2` (used by the setup check)::

    PYTHONPATH=.cache/foolbox2 python -m benchmarks.foolbox2_ref IN.pt OUT.npz

``IN.pt`` (``torch.save``) holds ``model`` (the whole eval-mode module, unpickled with
``weights_only=False``), ``x`` (N, C, H, W) float32 in [0, 1], ``y`` (N,) int64, ``seeds`` (N,)
per-image seeds, ``attacks`` (names as in ``tdlib.attacks.PAPER_ATTACKS``), ``mode`` and ``threads``.
As in the paper's script (attack-notes 1) every attack is built as ``Attack(fmodel, distance=Linf)``
with the default criterion and hyper-parameters and called with ``unpack=False``; ShiftsAttack is
SpatialAttack called with ``do_rotations=False``.

* ``mode="per_image"``: ``foolbox.set_seeds(seeds[i])`` then ``attack(x[i:i+1], y[i:i+1])``, image by
  image (each image's random draws then depend on its seed only; tdlib's ``paper`` protocol draws the
  same streams from the same per-sample seeds).
* ``mode="batch"``: one ``attack(x, y)`` call over all images, seeded once with ``seeds[0]``; foolbox 2
  merges the per-sample queries into batched forwards (``run_parallel``), as the paper ran it.

``OUT.npz``: per attack ``<name>/perturbed`` (N, C, H, W) float32 (NaN where no adversarial),
``<name>/linf`` (N,) (inf where none, 0 where the clean image is misclassified), ``<name>/queries``
(N,) forward queries and ``<name>/seconds`` (wall time of the attack over all images).
"""

from __future__ import annotations

import collections
import collections.abc
import sys
import time
import warnings
from typing import Any

__all__ = ["ATTACK_CLASSES", "import_foolbox2", "main", "run_reference"]

#: tdlib attack name -> (foolbox 2 class name, extra call kwargs), the paper's ``main()`` run list.
ATTACK_CLASSES: dict[str, tuple[str, dict[str, Any]]] = {
    "single_pixel": ("SinglePixelAttack", {}),
    "salt_and_pepper": ("SaltAndPepperNoiseAttack", {}),
    "pointwise": ("PointwiseAttack", {}),
    "additive_gaussian": ("AdditiveGaussianNoiseAttack", {}),
    "additive_uniform": ("AdditiveUniformNoiseAttack", {}),
    "blended_uniform": ("BlendedUniformNoiseAttack", {}),
    "gaussian_blur": ("GaussianBlurAttack", {}),
    "contrast_reduction": ("ContrastReductionAttack", {}),
    "spatial": ("SpatialAttack", {}),
    "shifts": ("SpatialAttack", {"do_rotations": False}),
}


def import_foolbox2() -> tuple[Any, Any]:
    """Import foolbox 2.2.1 on Python >= 3.10 and return ``(foolbox, numpy)``.

    foolbox 2 imports ``Iterable``, ``Mapping`` etc. from ``collections``; they live in
    ``collections.abc`` since Python 3.10, so they are aliased back first.
    """
    for name in ("Iterable", "Mapping", "MutableMapping", "Sequence", "MutableSequence", "Callable",
                 "Hashable", "Sized", "Container", "Set", "MutableSet", "Iterator", "Generator"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import foolbox
        import numpy
    return foolbox, numpy


def _one(fb: Any, np: Any, adv: Any, shape: tuple[int, ...]) -> tuple[Any, float]:
    if adv.perturbed is None:
        return np.full(shape, np.nan, dtype=np.float32), float("inf")
    return np.asarray(adv.perturbed, dtype=np.float32).reshape(shape), float(adv.distance.value)


def run_reference(spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``spec["attacks"]`` on ``spec["model"]`` / ``x`` / ``y`` as described in the module doc."""
    import torch

    fb, np = import_foolbox2()
    torch.set_num_threads(int(spec.get("threads", 1)))
    model = spec["model"].eval()
    x = spec["x"].detach().cpu().float().numpy()
    y = spec["y"].detach().cpu().long().numpy()
    seeds = [int(s) for s in spec["seeds"]]
    n_classes = int(spec.get("num_classes", 10))
    fmodel = fb.models.PyTorchModel(model, bounds=(0, 1), num_classes=n_classes, device="cpu")
    out: dict[str, Any] = {}
    for name in spec["attacks"]:
        cls_name, kwargs = ATTACK_CLASSES[name]
        attack = getattr(fb.attacks, cls_name)(fmodel, distance=fb.distances.Linf)
        perturbed = np.empty_like(x)
        linf = np.empty(len(x), dtype=np.float64)
        queries = np.empty(len(x), dtype=np.int64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "did not find an adversarial", "failed to draw ..."
            t0 = time.perf_counter()
            if spec.get("mode", "per_image") == "batch":
                fb.set_seeds(seeds[0] if seeds else 0)
                advs = attack(x, y, unpack=False, **kwargs)
            else:
                advs = []
                for i in range(len(x)):
                    fb.set_seeds(seeds[i])
                    advs.extend(attack(x[i:i + 1], y[i:i + 1], unpack=False, **kwargs))
            seconds = time.perf_counter() - t0
        for i, adv in enumerate(advs):
            perturbed[i], linf[i] = _one(fb, np, adv, x.shape[1:])
            queries[i] = adv._total_prediction_calls
        out[f"{name}/perturbed"] = perturbed
        out[f"{name}/linf"] = linf
        out[f"{name}/queries"] = queries
        out[f"{name}/seconds"] = np.float64(seconds)
        print(f"[foolbox2] {name}: {seconds:.2f} s, {int(queries.sum())} queries", file=sys.stderr, flush=True)
    out["versions"] = np.array([fb.__version__, np.__version__, torch.__version__])
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.foolbox2_ref IN.pt OUT.npz``."""
    import torch

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    spec = torch.load(args[0], map_location="cpu", weights_only=False)
    _, np = import_foolbox2()
    np.savez(args[1], **run_reference(spec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
