"""Machine description and the measured peak FLOP/s that MFU is relative to."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.common import log, time_fn


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (platform.processor() as a fallback)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> tuple[float, float, float] | None:
    """1/5/15-minute load average (None where the OS has none)."""
    try:
        return os.getloadavg()
    except OSError:
        return None


def machine_info(device: torch.device, threads: int) -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "load_average_start": load_average(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        info["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
    return info


def measure_peak(device: torch.device, *, reduced: bool) -> dict[str, Any]:
    """Peak FLOP/s of a large square fp32 matmul and large fp32 convs, on ``device`` and threads.

    MFU denominators: ``peak_flops`` = the best of them (fp32); on CUDA and on CPUs with bf16
    support (AVX512-BF16 / AMX) also a bf16 matmul (``peak_flops_bf16``), the denominator of the AMP
    (bf16 autocast) rows. FLOPs = 2 x MACs.
    """
    cuda = device.type == "cuda"
    n = 1024 if reduced else (8192 if cuda else 2048)
    repeats = 3 if reduced else (10 if cuda else 5)
    out: dict[str, Any] = {}
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    t = time_fn(lambda: a @ b, device=device, warmup=2, repeats=repeats)
    out["matmul"] = {"shape": f"{n}x{n} @ {n}x{n} fp32", "flops": 2 * n**3 / t.median, "spread": t.spread}
    log(f"peak: matmul {n}^2 fp32 {out['matmul']['flops'] / 1e9:.1f} GFLOP/s")
    # convolutions at the widths the models use: NIN-light's widest layer (48 channels at 28x28) and
    # NIN's (192 at 32x32; on one CPU its inference ran above the 48-channel figure)
    shapes = {"conv": (32, 48, 28, 5) if reduced else ((256, 192, 32, 5) if cuda else (128, 48, 28, 5))}
    if not reduced and not cuda:
        shapes["conv_wide"] = (16, 192, 32, 5)
    for key, shape in shapes.items():
        out[key] = _conv_peak(device, *shape, repeats=repeats)
        log(f"peak: {out[key]['shape']} {out[key]['flops'] / 1e9:.1f} GFLOP/s")
    out["peak_flops"] = max(out[k]["flops"] for k in ("matmul", *shapes))
    if cuda or torch.ops.mkldnn._is_mkldnn_bf16_supported():
        ah, bh = a.bfloat16(), b.bfloat16()
        t = time_fn(lambda: ah @ bh, device=device, warmup=2, repeats=repeats)
        out["matmul_bf16"] = {"shape": f"{n}x{n} bf16", "flops": 2 * n**3 / t.median, "spread": t.spread}
        out["peak_flops_bf16"] = out["matmul_bf16"]["flops"]
        log(f"peak: matmul {n}^2 bf16 {out['peak_flops_bf16'] / 1e9:.1f} GFLOP/s")
    return out


def _conv_peak(device: torch.device, batch: int, ch: int, hw: int, k: int, *, repeats: int) -> dict[str, Any]:
    """FLOP/s of a ``k`` x ``k`` ``ch`` -> ``ch`` channels_last fp32 convolution at ``hw`` x ``hw``."""
    x = torch.randn(batch, ch, hw, hw, device=device).contiguous(memory_format=torch.channels_last)
    w = torch.randn(ch, ch, k, k, device=device).contiguous(memory_format=torch.channels_last)
    t = time_fn(lambda: F.conv2d(x, w, padding=k // 2), device=device, warmup=2, repeats=repeats)
    macs = batch * hw * hw * ch * ch * k * k
    return {"shape": f"conv{k}x{k} {ch}->{ch} at {hw}x{hw}, batch {batch}, channels_last fp32",
            "flops": 2 * macs / t.median, "spread": t.spread}
