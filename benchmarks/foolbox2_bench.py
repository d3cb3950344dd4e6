"""The attack models of the foolbox 2.2.1 comparison, and the side-by-side benchmark.

Victims come from functions: :func:`paper_victim` is the issue's LeNetFC-TD on MNIST (the zoo's
pretrained weights), :func:`small_victim` a small CNN that keeps the differential test fast
(foolbox 2 answers one image per forward). Models trained here are trained in-process,
deterministically, and cached under ``$TDLIB_CACHE/attack-victims``.

:func:`side_by_side` times every paper attack with foolbox 2.2.1 (image by image, and as the paper
called it: one ``run_parallel`` batch) and with tdlib on the same model, images and per-image seeds,
tdlib before and after foolbox 2 for each attack (the mean is reported), one thread each.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from benchmarks.common import log

Victim = tuple[nn.Module, Tensor, Tensor, float]


def _train(model: nn.Module, *, train_per_class: int, epochs: int, lr: float, seed: int) -> nn.Module:
    """tdlib's SGD training step on an MNIST subset, then BatchNorm statistics recomputed (after a
    few hundred steps the running averages, momentum 0.01 in the paper's models, still lag)."""
    from tdlib.config import TrainConfig
    from tdlib.data import load_dataset
    from tdlib.training import make_optimizer, train_epoch
    from tdlib.training.engine import recalibrate_bn

    torch.manual_seed(seed)
    bundle = load_dataset("mnist", train_per_class=train_per_class, test_per_class=1)
    opt = make_optimizer(model, TrainConfig(epochs=epochs, lr=lr))
    gen = torch.Generator().manual_seed(seed)
    cpu = torch.device("cpu")
    for _ in range(epochs):
        train_epoch(model, bundle.train, opt, batch_size=64, generator=gen, device=cpu)
    recalibrate_bn(model, bundle.train, device=cpu)
    return model.eval()


def _cached(key: dict[str, Any], build: Callable[[], nn.Module], train: Callable[[nn.Module], nn.Module]) -> nn.Module:
    from tdlib.data.root import cache_dir

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / "attack-victims" / f"{key['name']}-{digest}.pt"
    model = build()
    if path.is_file():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()
    model = train(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model


def _test_images(model: nn.Module, n: int) -> tuple[Tensor, Tensor, float]:
    """The first ``n`` clean-correct images of a fixed stratified MNIST test subset, and accuracy."""
    from tdlib.data import load_dataset

    bundle = load_dataset("mnist", train_per_class=1, test_per_class=100)
    x, y = bundle.test.images(), bundle.test.y
    with torch.no_grad():
        ok = torch.cat([model(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)]) == y
    return x[ok][:n].contiguous(), y[ok][:n].contiguous(), float(ok.float().mean())


def paper_victim(n_samples: int, *, train_per_class: int = 1500, epochs: int = 2,
                 zoo: bool = True) -> Victim:
    """The issue's model, LeNetFC-TD on MNIST, and ``n_samples`` test images it classifies correctly.

    The zoo's pretrained weights (``tdlib.zoo.load_pretrained``) where available and ``zoo``; else a
    LeNetFC-TD trained here for ``epochs`` on ``train_per_class`` images per class.
    """
    from tdlib.models import build_model

    if zoo:
        try:
            from tdlib.zoo import load_pretrained

            model = load_pretrained("mnist", "lenetfc", "td")
            return (model, *_test_images(model, n_samples))
        except Exception as exc:  # no zoo (or no such entry): train one
            log(f"zoo LeNetFC-TD unavailable ({exc}); training one")
    key = {"name": "lenetfc-td", "train_per_class": train_per_class, "epochs": epochs, "lr": 0.1, "seed": 0}
    model = _cached(key, lambda: build_model("lenetfc", "td"),
                    lambda m: _train(m, train_per_class=train_per_class, epochs=epochs, lr=0.1, seed=0))
    return (model, *_test_images(model, n_samples))


def small_cnn() -> nn.Module:
    """Conv(5x5, stride 2) -> BatchNorm -> ReLU -> Conv(5x5, stride 2) -> ReLU -> dense, on 28x28."""
    return nn.Sequential(nn.Conv2d(1, 8, 5, stride=2, padding=2), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 5, stride=2, padding=2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(16 * 7 * 7, 10))


def small_victim(n_samples: int, *, train_per_class: int = 500, epochs: int = 1) -> Victim:
    """:func:`small_cnn` trained on MNIST, and ``n_samples`` test images it classifies correctly."""
    key = {"name": "small-cnn", "train_per_class": train_per_class, "epochs": epochs, "lr": 0.05, "seed": 0}
    model = _cached(key, small_cnn,
                    lambda m: _train(m, train_per_class=train_per_class, epochs=epochs, lr=0.05, seed=0))
    return (model, *_test_images(model, n_samples))


def side_by_side(victim: Victim, attacks: Sequence[str], *, seed: int = 0, threads: Sequence[int] = (1,),
                 modes: Sequence[str] = ("per_image", "batch")) -> dict[str, Any]:
    """Per attack: foolbox 2.2.1 seconds in each mode, tdlib seconds, speed-ups and agreement.

    Both libraries run at every thread count in ``threads`` (torch's intra-op threads). The main
    columns are at ``threads[0]``; ``by_threads`` holds each count, and ``speedup_best`` compares
    each library at its fastest count (foolbox 2's one-image forwards gain nothing from a second
    thread, tdlib's batched ones do). foolbox 2's batched mode runs at ``threads[0]`` only. tdlib runs
    before and after foolbox 2 at each count (their mean is reported). Agreement is image for image
    against foolbox 2's per-image run at ``threads[0]`` (same per-image seeds).
    """
    from benchmarks.foolbox2_diff import compare, run_foolbox2, run_tdlib

    model, x, y, acc = victim
    counts = list(dict.fromkeys(int(t) for t in threads))
    if not counts or min(counts) < 1:
        raise ValueError(f"threads must be positive thread counts, got {threads!r}")
    old = torch.get_num_threads()

    def ours(name: str, t: int) -> dict[str, Any]:
        torch.set_num_threads(t)
        return run_tdlib(model, x, y, [name], seed=seed)[name]

    versions: list[str] = []

    def theirs(name: str, mode: str, t: int) -> dict[str, Any]:
        res = run_foolbox2(model, x, y, [name], seed=seed, mode=mode, threads=t)
        versions[:] = res["versions"]
        out: dict[str, Any] = res[name]
        return out

    rows = []
    try:
        for name in attacks:
            first = {t: ours(name, t) for t in counts}
            ref = {(m, t): theirs(name, m, t) for t in counts for m in modes if m == "per_image" or t == counts[0]}
            second = {t: ours(name, t) for t in counts}
            t0 = counts[0]
            base = ("per_image", t0) if ("per_image", t0) in ref else ("batch", t0)
            mean = {t: {**first[t], "seconds": (first[t]["seconds"] + second[t]["seconds"]) / 2} for t in counts}
            row = compare(x, {name: ref[base]}, {name: mean[t0]}, [name])[0]
            row["tdlib_runs_s"] = [first[t0]["seconds"], second[t0]["seconds"]]
            row["tdlib_repeatable"] = all(bool((first[t]["x_adv"] == second[t]["x_adv"]).all()) for t in counts)
            for m in modes:
                row[f"foolbox2_{m}_s"] = ref[(m, t0)]["seconds"]
                row[f"speedup_{m}"] = ref[(m, t0)]["seconds"] / max(mean[t0]["seconds"], 1e-9)
            row["by_threads"] = {}
            for t in counts:
                same = compare(x, {name: ref[base]}, {name: mean[t]}, [name])[0]["same"]
                fb = ref.get(("per_image", t), {}).get("seconds")
                row["by_threads"][str(t)] = {"tdlib_s": mean[t]["seconds"], "tdlib_runs_s": [first[t]["seconds"],
                                             second[t]["seconds"]], "foolbox2_per_image_s": fb, "same": same}
            if "per_image" in modes:
                fb_best = min(counts, key=lambda t: ref[("per_image", t)]["seconds"])
                td_best = min(counts, key=lambda t: mean[t]["seconds"])
                row.update(foolbox2_best_threads=fb_best, tdlib_best_threads=td_best,
                           speedup_best=ref[("per_image", fb_best)]["seconds"] / max(mean[td_best]["seconds"], 1e-9))
            log(f"foolbox2 vs tdlib, {name}: " + "; ".join(
                f"{t} thread(s): foolbox 2 per image {row['by_threads'][str(t)]['foolbox2_per_image_s'] or 0:.1f} s, "
                f"tdlib {mean[t]['seconds']:.2f} s" for t in counts) + f"; same {row['same']}/{row['n']}")
            rows.append(row)
    finally:
        torch.set_num_threads(old)
    return {"model": type(model).__name__, "clean_accuracy": acc, "samples": len(x), "threads": counts[0],
            "thread_counts": counts, "seed": seed, "modes": list(modes), "versions": versions, "rows": rows,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}
