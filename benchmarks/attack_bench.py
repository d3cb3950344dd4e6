"""Attack throughput: tdlib's batched ``run_attack`` against a per-sample loop (batch_size=1), and
the paper's ten attacks against foolbox 2.2.1 itself (:func:`foolbox2_comparison`)."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from benchmarks.common import log, sync

FULL_ATTACKS = ("additive_gaussian", "gaussian_blur", "contrast_reduction", "salt_and_pepper", "single_pixel")
REDUCED_ATTACKS = ("additive_gaussian", "salt_and_pepper")


def _victim(device: torch.device, *, train_steps: int, n_samples: int) -> tuple[nn.Module, torch.Tensor,
                                                                                 torch.Tensor, float]:
    """LeNetFC-BU trained ``train_steps`` SGD steps on MNIST and ``n_samples`` test images it gets right."""
    from tdlib.config import TrainConfig
    from tdlib.data import load_dataset
    from tdlib.models import build_model
    from tdlib.training import make_optimizer, train_epoch
    from tdlib.training.engine import recalibrate_bn

    torch.manual_seed(0)
    bundle = load_dataset("mnist", train_per_class=max(13 * train_steps, 50), test_per_class=50)
    model = build_model("lenetfc", "bu").to(device)
    opt = make_optimizer(model, TrainConfig(epochs=1, lr=0.05))
    gen = torch.Generator().manual_seed(0)
    done = 0
    while done < train_steps:
        n = min(len(bundle.train), (train_steps - done) * 128)
        sub = type(bundle.train)(bundle.train.x[:n], bundle.train.y[:n])
        train_epoch(model, sub, opt, batch_size=128, generator=gen, device=device)
        done += -(-n // 128)
    # BN statistics after a few steps lag far behind (momentum 0.01): recompute them, as the CPU profiles do
    recalibrate_bn(model, bundle.train, device=device)
    model.eval()
    x, y = bundle.test.images(), bundle.test.y
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 500].to(device)).argmax(1).cpu() for i in range(0, len(x), 500)])
    ok = pred == y
    acc = float(ok.float().mean())
    return model, x[ok][:n_samples], y[ok][:n_samples], acc


def attack_sweep(device: torch.device, *, reduced: bool, steps: int | None = None) -> dict[str, Any]:
    """Images/s of each attack, batched (one call, batch = all samples) vs a batch_size=1 loop.

    Both sides attack the same clean-correct samples with the same ``steps`` in the same run.
    """
    from tdlib.attacks import run_attack

    n = 4 if reduced else 64
    steps = steps if steps is not None else (20 if reduced else 100)
    attacks = REDUCED_ATTACKS if reduced else FULL_ATTACKS
    model, x, y, acc = _victim(device, train_steps=5 if reduced else 60, n_samples=n)
    log(f"attacks: LeNetFC-BU clean accuracy {acc:.2f}; {len(x)} samples, {steps} steps")
    rows = []
    for name in attacks:
        sync(device)
        t0 = time.perf_counter()
        res = run_attack(model, x, y, name, batch_size=len(x), steps=steps)
        sync(device)
        t_batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        found_loop = 0
        for i in range(len(x)):
            r = run_attack(model, x[i:i + 1], y[i:i + 1], name, batch_size=1, steps=steps)
            found_loop += int(r.success.sum())
        sync(device)
        t_loop = time.perf_counter() - t0
        found = int(res.success.sum())
        row = {"attack": name, "samples": len(x), "steps": steps, "batched_s": t_batched, "loop_s": t_loop,
               "batched_ips": len(x) / t_batched, "loop_ips": len(x) / t_loop,
               "speedup": t_loop / t_batched, "found_batched": found, "found_loop": found_loop}
        log(f"attack {name}: batched {row['batched_ips']:.2f} img/s, loop {row['loop_ips']:.2f} img/s, "
            f"x{row['speedup']:.1f}")
        rows.append(row)
    return {"model": "lenetfc/bu", "clean_accuracy": acc, "protocol": "paper", "samples": len(x),
            "steps": steps, "rows": rows, "_victim": (model, x, y)}


def profile_attack(victim: tuple[nn.Module, torch.Tensor, torch.Tensor], name: str, steps: int,
                   device: torch.device, *, batched: bool) -> str:
    """torch.profiler top-ops table of one batched call (or of the per-sample loop over two samples)."""
    from tdlib.attacks import run_attack

    model, x, y = victim
    acts = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=acts) as prof:
        if batched:
            run_attack(model, x, y, name, batch_size=len(x), steps=steps)
        else:  # the first two samples are enough to see what a batch-of-one call spends its time on
            for i in range(min(len(x), 2)):
                run_attack(model, x[i:i + 1], y[i:i + 1], name, batch_size=1, steps=steps)
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return str(prof.key_averages().table(sort_by=key, row_limit=15))


#: images of the foolbox 2.2.1 side-by-side (as in the issue)
FOOLBOX2_SAMPLES = 90
#: the goal of the attack issue: every paper attack this much faster than foolbox 2.2.1
GOAL_FOOLBOX2_SPEEDUP = 10.0
#: torch threads of both sides: one each (the issue's measurement), and two each (this machine's cores)
FOOLBOX2_THREADS = (1, 2)


def foolbox2_comparison(*, reduced: bool, samples: int = FOOLBOX2_SAMPLES) -> dict[str, Any]:
    """Every paper attack with foolbox 2.2.1 and with tdlib, side by side, at one and at two threads each.

    Skipped (with the reason) in reduced mode and where the side environment is missing, so the
    reduced benchmark stays fast and never needs foolbox 2.
    """
    from benchmarks.foolbox2_bench import paper_victim, side_by_side
    from benchmarks.foolbox2_diff import side_env
    from benchmarks.machine import load_average
    from tdlib.attacks import PAPER_ATTACKS

    if reduced:
        return {"skipped": "reduced mode (the comparison takes ~40 min; run without --reduced)"}
    if side_env() is None:
        return {"skipped": "foolbox 2.2.1 is not installed: run `bash scripts/setup_foolbox2.sh`"}
    victim = paper_victim(samples)
    log(f"foolbox2 comparison: LeNetFC-TD clean accuracy {victim[3]:.3f} (on a 1000-image test subset), "
        f"{len(victim[1])} images")
    load_start = load_average()
    out = side_by_side(victim, PAPER_ATTACKS, threads=FOOLBOX2_THREADS)
    out.update(model="lenetfc/td", load_average_start=load_start, load_average_end=load_average(),
               goal=GOAL_FOOLBOX2_SPEEDUP)
    return out
