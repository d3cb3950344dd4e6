"""Engine efficiency of the paper attacks: how close each attack runs to its model's own speed.

An attack of the ``paper`` protocol is a sequence of candidate images that the model classifies;
its unavoidable cost is ``queries x t``, with ``t`` the model's forward time per image at its best
batch size. The engine efficiency of one attack call is that cost over the call's wall time, fixed
costs included (candidate generation, bookkeeping, padding, small batches): 1.0 would be a model
that never waits for the engine. Measured on the zoo's TD models of three sizes (LeNetFC on MNIST,
NIN-light on MNIST, ResNet32 on CIFAR-10 augmented), on the same clean-correct test images per model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from benchmarks.common import log, sync, time_fn
from benchmarks.foolbox2_diff import _count_queries

#: (dataset, backbone, variant) of the zoo models measured; the goal of the attack-core issue
EFFICIENCY_MODELS: tuple[tuple[str, str, str], ...] = (
    ("mnist", "lenetfc", "td"), ("mnist", "nin_light", "td"), ("cifar10_aug", "resnet32", "td"))
GOAL_EFFICIENCY = 0.8
#: batch sizes tried for the model's own best forward time per image
FORWARD_BATCHES = (32, 64, 128, 256, 512)


def forward_seconds_per_image(model: nn.Module, x: Tensor, *, device: torch.device,
                              batches: Sequence[int] = FORWARD_BATCHES) -> tuple[int, float]:
    """The model's fastest forward (eval, ``inference_mode``) per image over ``batches``:
    ``(best batch, seconds per image)``; the batch is ``x`` repeated to size."""
    best: tuple[int, float] | None = None
    for b in batches:
        xb = x.repeat((b + len(x) - 1) // len(x), 1, 1, 1)[:b].to(device)

        def fwd(xb: Tensor = xb) -> None:
            with torch.inference_mode():
                model(xb)

        per = time_fn(fwd, device=device, warmup=2, repeats=5).median / b
        if best is None or per < best[1]:
            best = (b, per)
    assert best is not None
    return best


def _images(dataset: str, model: nn.Module, n: int) -> tuple[Tensor, Tensor]:
    """The first ``n`` test images of the archive's permutation (seed 0) that ``model`` classifies
    correctly."""
    from tdlib.archive.build import test_indices
    from tdlib.data import load_dataset

    data = load_dataset(dataset, test_per_class=None, train_per_class=1)
    idx = torch.from_numpy(test_indices(len(data.test), min(len(data.test), 4 * n + 50), 0))
    x, y = data.test.images(idx), data.test.y[idx]
    with torch.inference_mode():
        ok = torch.cat([model(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)]) == y
    return x[ok][:n].contiguous(), y[ok][:n].contiguous()


def _profile(model: nn.Module, x: Tensor, y: Tensor, attack: str) -> str:
    from tdlib.attacks import run_attack

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run_attack(model, x, y, attack, protocol="paper", seed=0, batch_size=len(x))
    return str(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def engine_efficiency(device: torch.device, *, reduced: bool, samples: int | None = None,
                      models: Sequence[tuple[str, str, str]] = EFFICIENCY_MODELS,
                      profile_below: bool = False) -> dict[str, Any]:
    """Per model and paper attack: queries, wall seconds, the model's share and the efficiency.

    Models the zoo lacks are listed as skipped. ``reduced``: LeNetFC only, 4 images, two attacks.
    ``profile_below``: a torch.profiler table of every attack below :data:`GOAL_EFFICIENCY`.
    """
    from tdlib.attacks import PAPER_ATTACKS, run_attack
    from tdlib.zoo import load_pretrained

    n = samples or (4 if reduced else 40)
    attacks = ("salt_and_pepper", "gaussian_blur") if reduced else PAPER_ATTACKS
    out: dict[str, Any] = {"goal": GOAL_EFFICIENCY, "samples": n, "threads": torch.get_num_threads(),
                           "models": [], "skipped": {}}
    for dataset, backbone, variant in (models[:1] if reduced else models):
        name = f"{dataset}-{backbone}-{variant}"
        try:
            model = load_pretrained(dataset, backbone, variant, device=str(device))
        except Exception as exc:  # a zoo without this entry: say so, measure the others
            out["skipped"][name] = str(exc).splitlines()[0]
            log(f"efficiency: {name} skipped ({out['skipped'][name]})")
            continue
        x, y = _images(dataset, model, n)
        batch, t_img = forward_seconds_per_image(model, x, device=device)
        log(f"efficiency: {name}: {len(x)} images, best forward {1e6 * t_img:.1f} us/img at batch {batch}")
        rows = []
        for a in attacks:
            with _count_queries() as count:
                sync(device)
                t0 = time.perf_counter()
                res = run_attack(model, x, y, a, protocol="paper", seed=0, batch_size=len(x))
                sync(device)
                wall = time.perf_counter() - t0
            row: dict[str, Any] = {"attack": a, "queries": count[0], "wall_s": wall, "model_s": count[0] * t_img,
                   "efficiency": count[0] * t_img / wall if wall > 0 else float("nan"),
                   "found": int(res.success.sum())}
            if profile_below and row["efficiency"] < GOAL_EFFICIENCY:
                row["profile"] = _profile(model, x, y, a)
            log(f"efficiency: {name} {a}: {count[0]:,} queries, {wall:.2f} s, efficiency {row['efficiency']:.2f}")
            rows.append(row)
        out["models"].append({"model": name, "images": len(x), "best_batch": batch,
                              "forward_us_per_image": 1e6 * t_img, "rows": rows})
    return out
