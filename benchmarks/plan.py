"""Which model cases run, at which batch size, in the default and the reduced mode."""

from __future__ import annotations

from dataclasses import replace

import torch

from benchmarks.worker import Case

#: Paper batch sizes (reference recipe): 128 everywhere except ResNet18-half TD on Imagenette (64).
PAPER_BATCH = 128
PAPER_BATCH_OVERRIDES = {("resnet18_half", "td"): 64}

#: Default mode on CPU: the batch of a case is halved (down to CPU_MIN_BATCH) until one training step
#: costs at most this many FLOPs (3 x 2 x MACs x batch). This reduces NIN TD and ResNet18-half (and a
#: few other large cases); the tables mark every reduced row. The MFU goal cases keep 128.
CPU_STEP_FLOP_BUDGET = 60e9
CPU_MIN_BATCH = 8
#: Cases that always keep the paper batch: the MFU goals are stated at batch 128 for NIN-light TD and
#: for the three ResNet32 variants of the CIFAR-10 zoo (the batch they are trained at).
KEEP_PAPER_BATCH = (("nin_light", "td"), ("resnet32", "bu"), ("resnet32", "td"), ("resnet32", "td_uni"))

#: Reduced mode: a handful of small models at a small batch, tiny step counts.
REDUCED_MODELS = (("lenetfc", "bu"), ("lenetfc", "td"), ("nin_light", "bu"), ("nin_light", "td"))
REDUCED_BATCH = 16

#: Models of the layout / threads / AMP / compile comparison.
VARIANT_MODELS = (("nin_light", "td"), ("lenetfc", "bu"), ("lenetfc", "td"), ("resnet32", "bu"))
REDUCED_VARIANT_MODELS = (("lenetfc", "td"),)


def paper_batch(backbone: str, variant: str) -> int:
    """The batch size the paper trains ``backbone``/``variant`` with."""
    return PAPER_BATCH_OVERRIDES.get((backbone, variant), PAPER_BATCH)


def default_channels_last(backbone: str) -> bool:
    """tdlib's training default (``fit``): channels_last for every backbone except LeNetFC."""
    return backbone != "lenetfc"


def _steps(step_flops: float, device: torch.device) -> tuple[int, int]:
    """(warm-up, timed repeats) for a step of ``step_flops``."""
    if device.type == "cuda":
        return 3, 10
    if step_flops < 5e9:
        return 3, 10
    if step_flops < 30e9:
        return 2, 5
    if step_flops < 100e9:
        return 1, 3
    return 1, 2


def model_case(backbone: str, variant: str, macs: int, *, device: torch.device, threads: int,
               reduced: bool) -> Case:
    """The main-table case of one backbone x variant."""
    paper = paper_batch(backbone, variant)
    batch, note = paper, ""
    if reduced:
        batch = min(REDUCED_BATCH, paper)
        note = f"reduced mode: batch {batch} (paper {paper})"
        warmup, repeats = 1, 2
    else:
        if device.type == "cpu" and (backbone, variant) not in KEEP_PAPER_BATCH:
            while batch > CPU_MIN_BATCH and 6 * macs * batch > CPU_STEP_FLOP_BUDGET:
                batch //= 2
            if batch != paper:
                note = f"CPU: batch {batch} (paper {paper}), {CPU_STEP_FLOP_BUDGET / 1e9:.0f} GFLOP/step budget"
        warmup, repeats = _steps(6 * macs * batch, device)
    return Case(backbone=backbone, variant=variant, batch=batch, device=str(device), threads=threads,
                warmup=warmup, repeats=repeats, channels_last=default_channels_last(backbone),
                amp=device.type == "cuda", note=note)


def variant_cases(base: Case, device: torch.device) -> list[tuple[str, Case]]:
    """Settings compared against ``base`` (the main-table case): CPU layout, threads, bf16 autocast
    and the layers before the speed-ups (``legacy``); CUDA AMP, channels_last and torch.compile.
    Returns (setting name, case) pairs, the base first."""
    out = [("default", base)]
    out.append((f"channels_last={'off' if base.channels_last else 'on'}",
                replace(base, channels_last=not base.channels_last, inference=False)))
    if device.type == "cpu":
        other = 1 if base.threads != 1 else 2
        out.append((f"threads={other}", replace(base, threads=other, inference=False)))
        out.append(("bf16 autocast", replace(base, amp=True, inference=False)))
        out.append(("legacy layers", replace(base, legacy=True, inference=False)))
    else:
        out.append((f"amp={'off' if base.amp else 'on'}", replace(base, amp=not base.amp, inference=False)))
        out.append(("torch.compile", replace(base, compile=True, inference=False)))
    return out
