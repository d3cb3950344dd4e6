"""One model case (training step, inference, peak memory), measured in a fresh process.

``python -m benchmarks.worker '<case json>'`` prints one JSON line on stdout. A fresh process per
case makes the CPU memory number honest: ``ru_maxrss`` / ``VmHWM`` are process-wide high-water
marks, so each model gets its own process and its own baseline.

Memory (``mem_bytes``):
  * CPU: the growth of the resident-set high-water mark over the warm-up and timed training steps,
    above the RSS right after the model, optimiser and batch were built. Where Linux allows it the
    mark is reset first (``/proc/self/clear_refs`` = 5, then ``VmHWM``); otherwise
    ``getrusage(RUSAGE_SELF).ru_maxrss`` before/after. It counts activations, gradients, SGD
    momentum buffers and what the allocator keeps; not the weights or the interpreter.
  * CUDA: ``torch.cuda.max_memory_allocated`` minus the memory allocated before the steps.
"""

from __future__ import annotations

import json
import resource
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.common import log, resolve_device, sync, time_fn


@dataclass(frozen=True)
class Case:
    """What to measure for one model."""

    backbone: str
    variant: str
    batch: int
    device: str = "cpu"
    threads: int = 2
    warmup: int = 1
    repeats: int = 3
    channels_last: bool = False
    amp: bool = False
    compile: bool = False
    inference: bool = True
    profile: bool = False
    note: str = ""
    seed: int = 0
    #: the layers as they were before this benchmark's speed-ups (torch's nn.Dropout with its
    #: bernoulli_ masks, F.pad copies for stride-1 SAME convs, 1x1 convs as convolutions,
    #: out-of-place ReLU), for side-by-side
    legacy: bool = False

    @property
    def label(self) -> str:
        flags = [f for f, on in (("cl", self.channels_last), ("amp", self.amp), ("compile", self.compile),
                                 ("legacy", self.legacy)) if on]
        extra = f" [{','.join(flags)}]" if flags else ""
        return f"{self.backbone}/{self.variant} b{self.batch} t{self.threads}{extra}"


# ----------------------------------------------------------------------------------------- memory
def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class CpuPeakMemory:
    """Resident-set high-water-mark growth between :meth:`start` and :meth:`stop` (bytes)."""

    def start(self) -> None:
        self.method = "ru_maxrss delta"
        try:
            Path("/proc/self/clear_refs").write_text("5")
            base = _status_kb("VmRSS")
            if base is not None and _status_kb("VmHWM") is not None:
                self.method = "VmHWM reset (clear_refs) minus VmRSS"
                self.base_kb = base
                return
        except OSError:
            pass
        self.base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def stop(self) -> int:
        peak = _status_kb("VmHWM") if self.method.startswith("VmHWM") else None
        if peak is None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return max(peak - self.base_kb, 0) * 1024


# ----------------------------------------------------------------------------------------- measure
def _top_ops(prof: Any, device: torch.device, rows: int = 15) -> str:
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return str(prof.key_averages().table(sort_by=key, row_limit=rows))


def legacy_layers(model: nn.Module) -> nn.Module:
    """Undo this repository's training-step speed-ups in place (see :attr:`Case.legacy`).

    Numerically the same network (same parameters, same function up to float rounding and dropout
    draws); only the kernels differ, so the two can be timed side by side.
    """
    from tdlib.models.layers import Conv2dSame, Dropout

    for mod in list(model.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, Dropout):
                setattr(mod, name, nn.Dropout(child.p).train(child.training))
        if isinstance(mod, Conv2dSame):
            mod._pointwise = False
            if getattr(mod, "_native_same", False):
                mod._native_same = False
                mod.padding = (0, 0)
        if isinstance(mod, nn.ReLU):
            mod.inplace = False
    return model


def measure(case: Case) -> dict[str, Any]:
    """Training-step and inference throughput, peak memory (and optionally a profile) of ``case``."""
    from tdlib.config import TrainConfig
    from tdlib.data import ArrayDataset
    from tdlib.models import build_model, model_summary
    from tdlib.training import make_optimizer, train_epoch
    from tdlib.training.engine import autocast

    torch.set_num_threads(case.threads)
    torch.manual_seed(case.seed)
    dev = resolve_device(case.device)
    model = build_model(case.backbone, case.variant)
    if case.legacy:
        legacy_layers(model)
    summary = model_summary(model)
    c, h, w = summary["input_shape"]
    model = model.to(dev)
    if case.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, TrainConfig(epochs=1, lr=0.01, weight_decay=5e-4))
    run_model: nn.Module = torch.compile(model) if case.compile else model  # type: ignore[assignment]
    gen = torch.Generator().manual_seed(case.seed)
    x_u8 = torch.randint(0, 256, (case.batch, c, h, w), generator=gen, dtype=torch.uint8).to(dev)
    y = torch.randint(0, 10, (case.batch,), generator=gen).to(dev)
    one_batch = ArrayDataset(x_u8, y)  # already on the device: train_epoch's .to() is a no-op

    def train_step() -> None:
        # exactly one optimiser step of tdlib's training loop (uint8 -> float, forward, CE, backward, SGD)
        train_epoch(run_model, one_batch, opt, batch_size=case.batch, generator=gen, device=dev,
                    amp=case.amp, channels_last=case.channels_last)

    cpu_mem = CpuPeakMemory()
    if dev.type == "cuda":
        sync(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    else:
        cpu_mem.start()
    log(f"train {case.label}")
    train = time_fn(train_step, device=dev, warmup=case.warmup, repeats=case.repeats)
    if dev.type == "cuda":
        mem, mem_method = torch.cuda.max_memory_allocated(dev) - base, "torch.cuda.max_memory_allocated delta"
    else:
        mem, mem_method = cpu_mem.stop(), cpu_mem.method
    out: dict[str, Any] = {
        **asdict(case),
        "label": case.label,
        "params": int(summary["params"]),
        "macs": int(summary["macs"]),
        "input_shape": [c, h, w],
        "train_s": train.median,
        "train_times": list(train.times),
        "train_spread": train.spread,
        "train_ips": case.batch / train.median,
        "mem_bytes": int(mem),
        "mem_method": mem_method,
    }
    if case.inference:
        run_model.eval()
        xf = x_u8.float().div_(255.0)
        if case.channels_last:
            xf = xf.contiguous(memory_format=torch.channels_last)

        def infer() -> None:
            with torch.inference_mode(), autocast(dev, case.amp):
                run_model(xf)

        log(f"infer {case.label}")
        inf = time_fn(infer, device=dev, warmup=case.warmup, repeats=case.repeats)
        out.update(infer_s=inf.median, infer_times=list(inf.times), infer_ips=case.batch / inf.median)
        run_model.train()
    if case.profile:
        log(f"profile {case.label}")
        acts = [torch.profiler.ProfilerActivity.CPU]
        if dev.type == "cuda":
            acts.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=acts) as prof:
            train_step()
            sync(dev)
        out["profile"] = _top_ops(prof, dev)
    return out


def run_in_subprocess(case: Case, *, timeout: float = 3600.0) -> dict[str, Any]:
    """Measure ``case`` in a fresh ``python -m benchmarks.worker`` process."""
    import os
    import subprocess

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.worker", json.dumps(asdict(case))],
        cwd=root, env=env, stdout=subprocess.PIPE, text=True, timeout=timeout, check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark worker failed for {case.label} (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_in_process(case: Case) -> dict[str, Any]:
    """Measure ``case`` in this process (reduced mode: no per-case interpreter start-up).

    The memory number is then only indicative: the allocator may reuse pages an earlier case freed.
    """
    threads = torch.get_num_threads()
    try:
        result = measure(case)
    finally:
        torch.set_num_threads(threads)
    result["mem_method"] += " (in-process: indicative only)"
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process: one JSON case in, one JSON result line out."""
    args = sys.argv[1:] if argv is None else argv
    case = Case(**json.loads(args[0]))
    print(json.dumps(measure(case)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
