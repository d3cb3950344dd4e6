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


def side_by_side(victim: Victim, attacks: Sequence[str], *, seed: int = 0, threads: int = 1,
                 modes: Sequence[str] = ("per_image", "batch")) -> dict[str, Any]:
    """Per attack: foolbox 2.2.1 seconds in each mode, tdlib seconds, speed-ups and agreement.

    Agreement is image for image against the per-image foolbox 2 run (same per-image seeds).
    """
    from benchmarks.foolbox2_diff import compare, run_foolbox2, run_tdlib

    model, x, y, acc = victim
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    try:
        for name in attacks:
            first = run_tdlib(model, x, y, [name], seed=seed)
            ref = {m: run_foolbox2(model, x, y, [name], seed=seed, mode=m, threads=threads) for m in modes}
            second = run_tdlib(model, x, y, [name], seed=seed)
            runs = [first[name]["seconds"], second[name]["seconds"]]
            ours = {**first[name], "seconds": sum(runs) / 2}
            per_image = ref.get("per_image", ref[modes[0]])
            row = compare(x, per_image, {name: ours}, [name])[0]
            row["tdlib_runs_s"] = runs
            row["tdlib_repeatable"] = bool((first[name]["x_adv"] == second[name]["x_adv"]).all())
            for m in modes:
                row[f"foolbox2_{m}_s"] = ref[m][name]["seconds"]
                row[f"speedup_{m}"] = ref[m][name]["seconds"] / max(ours["seconds"], 1e-9)
            log(f"foolbox2 vs tdlib, {name}: " + ", ".join(f"{m} {row[f'foolbox2_{m}_s']:.1f} s" for m in modes)
                + f"; tdlib {ours['seconds']:.2f} s; same {row['same']}/{row['n']}")
            rows.append(row)
        versions = ref[modes[0]]["versions"] if attacks else []
    finally:
        torch.set_num_threads(old)
    return {"model": type(model).__name__, "clean_accuracy": acc, "samples": len(x), "threads": threads,
            "seed": seed, "modes": list(modes), "versions": versions, "rows": rows,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}
