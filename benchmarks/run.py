"""Run the benchmark suite and write ``report-<device>.json`` and ``RESULTS.md``.

Usage::

    python -m benchmarks.run [--reduced] [--out DIR] [--device D] [--threads N] [--profile-missed]
                             [--only SECTION ...]

With ``--only``, the sections not run are carried over from the existing ``report-<device>.json`` in the
output folder (each keeps the date and load of the run that measured it, shown in ``RESULTS.md``), so
one section can be re-measured, e.g. on an idle machine, without repeating the rest.

Default output: ``benchmarks/results/report-<device>.json`` and ``benchmarks/RESULTS.md`` (the book's
Reproducibility part includes the latter); with ``--out DIR`` both go into DIR.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks import plan
from benchmarks.attack_bench import GOAL_FOOLBOX2_SPEEDUP, attack_sweep, foolbox2_comparison, profile_attack
from benchmarks.common import log, resolve_device
from benchmarks.data_bench import data_pipeline
from benchmarks.efficiency_bench import GOAL_EFFICIENCY, engine_efficiency
from benchmarks.machine import load_average, machine_info, measure_peak
from benchmarks.report import render_markdown
from benchmarks.worker import Case, run_in_process, run_in_subprocess

HERE = Path(__file__).resolve().parent
SECTIONS = ("models", "variants", "attacks", "foolbox2", "efficiency", "data")

#: Goals of the benchmark issue.
GOAL_MFU = 0.6  # NIN-light TD and ResNet32 BU/TD/TD_uni training steps, batch 128, CPU, 2 threads: >= 60 % of peak
RESNET32_ZOO_VARIANTS = ("bu", "td", "td_uni")  # the CIFAR-10 zoo's ResNet32 models (issue 26's MFU goal)
GOAL_LEGACY_SPEEDUP = 2.0  # LeNetFC training steps >= 2x the images/s of the layers before the speed-ups
GOAL_RATIO = 1.2  # TD/BU time ratio within 1.2x of the TD/BU MAC ratio (both directions)
GOAL_ATTACK_SPEEDUP = 10.0  # batched attack >= 10x the per-sample loop


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reduced", action="store_true", help="a handful of models, tiny step counts (< 60 s on 2 cores)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: benchmarks/results + RESULTS.md)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch.get_num_threads())")
    p.add_argument("--profile-missed", action="store_true", help="torch.profiler top ops of every missed goal")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=None, help="run only these sections")
    return p.parse_args(argv)


def _mfu(flops_per_s: float, peak: dict[str, Any], amp: bool) -> float:
    denom = peak.get("peak_flops_bf16", peak["peak_flops"]) if amp else peak["peak_flops"]
    return flops_per_s / denom


def _annotate(row: dict[str, Any], peak: dict[str, Any]) -> dict[str, Any]:
    """Add achieved FLOP/s and MFU (training: 3 x 2 x MACs per image; inference: 2 x MACs)."""
    row["train_flops"] = 6 * row["macs"] * row["train_ips"]
    row["train_mfu"] = _mfu(row["train_flops"], peak, row["amp"])
    if "infer_ips" in row:
        row["infer_flops"] = 2 * row["macs"] * row["infer_ips"]
        row["infer_mfu"] = _mfu(row["infer_flops"], peak, row["amp"])
    return row


def _measure(case: Case, *, reduced: bool) -> dict[str, Any]:
    """A fresh process per case (honest peak memory); in reduced mode in-process, to stay fast."""
    return run_in_process(case) if reduced else run_in_subprocess(case)


def run_models(device: torch.device, threads: int, peak: dict[str, Any], *, reduced: bool) -> list[dict[str, Any]]:
    from tdlib.models import BACKBONES, available_variants, build_model, model_summary

    pairs = list(plan.REDUCED_MODELS) if reduced else [(b, v) for b in BACKBONES for v in available_variants(b)]
    rows = []
    for i, (backbone, variant) in enumerate(pairs, 1):
        macs = int(model_summary(build_model(backbone, variant))["macs"])
        case = plan.model_case(backbone, variant, macs, device=device, threads=threads, reduced=reduced)
        log(f"model {i}/{len(pairs)}: {case.label}")
        row = _annotate(_measure(case, reduced=reduced), peak)
        log(f"  train {row['train_ips']:.1f} img/s (MFU {row['train_mfu']:.1%}), "
            f"infer {row.get('infer_ips', 0):.1f} img/s, mem {row['mem_bytes'] / 2**20:.0f} MiB")
        rows.append(row)
    return rows


def matched_bu(rows: list[dict[str, Any]], *, reduced: bool) -> list[dict[str, Any]]:
    """BU training steps at each batch a TD row of the same backbone ran at, where that differs from
    the BU row's batch (CPU default mode reduces the batch of the expensive TD models): per-image time
    depends on the batch, so the TD/BU ratio compares equal batches."""
    bu = {r["backbone"]: r for r in rows if r["variant"] == "bu"}
    out = []
    for batch, backbone in sorted({(r["batch"], r["backbone"]) for r in rows if r["variant"] != "bu"}):
        base = bu.get(backbone)
        if base is None or base["batch"] == batch:
            continue
        fields = {k: base[k] for k in Case.__dataclass_fields__}
        case = Case(**{**fields, "batch": batch, "inference": False, "note": f"BU at the TD batch {batch}"})
        log(f"matched-batch BU: {case.label}")
        out.append(_measure(case, reduced=reduced))
    return out


def td_bu_ratios(rows: list[dict[str, Any]], extra_bu: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per backbone and TD variant: per-image training time ratio TD/BU beside the MAC ratio (BU at the
    TD row's batch where ``extra_bu`` has it)."""
    bu = {(r["backbone"], r["batch"]): r for r in [*rows, *extra_bu] if r["variant"] == "bu"}
    bu_any = {r["backbone"]: r for r in rows if r["variant"] == "bu"}
    out = []
    for r in rows:
        base = bu.get((r["backbone"], r["batch"]), bu_any.get(r["backbone"]))
        if r["variant"] == "bu" or base is None:
            continue
        time_ratio = base["train_ips"] / r["train_ips"]
        mac_ratio = r["macs"] / base["macs"]
        rr = time_ratio / mac_ratio
        out.append({"backbone": r["backbone"], "variant": r["variant"], "bu_ips": base["train_ips"],
                    "td_ips": r["train_ips"], "time_ratio": time_ratio,
                    "mac_ratio": mac_ratio, "ratio_of_ratios": rr,
                    "within_goal": 1 / GOAL_RATIO <= rr <= GOAL_RATIO,
                    "same_batch": r["batch"] == base["batch"],
                    "batches": [base["batch"], r["batch"]]})
    return out


def run_variants(device: torch.device, threads: int, peak: dict[str, Any], model_rows: list[dict[str, Any]],
                 *, reduced: bool) -> list[dict[str, Any]]:
    from tdlib.models import build_model, model_summary

    models = plan.REDUCED_VARIANT_MODELS if reduced else plan.VARIANT_MODELS
    out = []
    for backbone, variant in models:
        macs = int(model_summary(build_model(backbone, variant))["macs"])
        base = plan.model_case(backbone, variant, macs, device=device, threads=threads, reduced=reduced)
        reuse = next((r for r in model_rows if r["label"] == base.label), None)
        for setting, case in plan.variant_cases(base, device):
            if setting == "default" and reuse is not None:
                row = dict(reuse)
            else:
                log(f"variant {setting}: {case.label}")
                row = _annotate(_measure(case, reduced=reduced), peak)
            row["setting"] = setting
            out.append(row)
    return out


#: the report keys each section writes
SECTION_KEYS = {"models": ("models", "matched_bu", "td_bu_ratios"), "variants": ("variants",),
                "attacks": ("attacks",), "foolbox2": ("foolbox2",), "efficiency": ("efficiency",),
                "data": ("data",)}


def carry_over(report: dict[str, Any], previous: Path, sections: set[str], *,
               profiled: bool = False) -> dict[str, Any]:
    """Copy the sections not run now from the ``previous`` report of this device (same mode) into
    ``report``; returns their provenance (date, load) by section. A missing or unreadable previous
    report carries nothing over (the sections stay absent).

    The measured peak goes with the training sections whose MFUs were computed from it: where
    neither ``models`` nor ``variants`` runs now, the previous peak is kept (``report["peak"]``
    replaced), so the MFU denominator shown is the one the carried MFUs used. The previous run's
    profiles of missed goals are kept unless this run profiles (``profiled``)."""
    try:
        old = json.loads(previous.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(old, dict) or old.get("mode") != report["mode"]:
        return {}
    old_sections = old.get("sections") or {k: {"date": old.get("date"),
                                               "load_average_start": old.get("machine", {}).get("load_average_start"),
                                               "load_average_end": old.get("machine", {}).get("load_average_end")}
                                           for k in SECTIONS}
    out = {}
    for name in SECTIONS:
        if name in sections or name not in old_sections:
            continue
        keys = [k for k in SECTION_KEYS[name] if k in old]
        if keys:
            report.update({k: old[k] for k in keys})
            out[name] = old_sections[name]
    if not sections & {"models", "variants"} and "models" in out and old.get("peak"):
        report["peak"] = old["peak"]
    if not profiled and old.get("profiles"):
        report["profiles"] = old["profiles"]
    return out


def _legacy_speedups(variants: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """(model, current / legacy train img/s) for every model measured both ways."""
    base = {(r["backbone"], r["variant"]): r["train_ips"] for r in variants if r["setting"] == "default"}
    return [(f"{r['backbone']}/{r['variant']}", base[(r["backbone"], r["variant"])] / r["train_ips"])
            for r in variants if r["setting"] == "legacy layers" and (r["backbone"], r["variant"]) in base]


def _goal(goal: str, summary: Callable[[], tuple[float, str, bool, str]] | None) -> dict[str, Any]:
    """One goal row; ``summary`` gives (value, display, met, case), None where this run did not measure it."""
    if summary is None:
        return {"goal": goal, "value": None, "display": "not run", "met": None, "case": None}
    value, display, met, case = summary()
    return {"goal": goal, "value": value, "display": display, "met": met, "case": case}


def evaluate_goals(report: dict[str, Any], device: torch.device, threads: int) -> list[dict[str, Any]]:
    """Where each goal of the issue stands (``met`` is None where this run cannot tell)."""
    models = report.get("models", [])
    nl = next((r for r in models if r["backbone"] == "nin_light" and r["variant"] == "td"), None)

    def where(row: dict[str, Any]) -> str:
        exact = row["batch"] == 128 and device.type == "cpu" and row["threads"] == 2
        return "" if exact else f" (measured at batch {row['batch']}, {row['threads']} threads, {device.type})"

    def mfu() -> tuple[float, str, bool, str]:
        assert nl is not None
        return nl["train_mfu"], f"MFU {nl['train_mfu']:.1%}{where(nl)}", nl["train_mfu"] >= GOAL_MFU, nl["label"]

    r32 = [r for r in models if r["backbone"] == "resnet32" and r["variant"] in RESNET32_ZOO_VARIANTS]

    def resnet32_mfu() -> tuple[float, str, bool, str]:
        worst = min(r32, key=lambda r: r["train_mfu"])
        return (worst["train_mfu"], ", ".join(f"{r['variant']} {r['train_mfu']:.1%}{where(r)}" for r in r32),
                all(r["train_mfu"] >= GOAL_MFU for r in r32), worst["label"])

    main = [r for r in report.get("td_bu_ratios", []) if r["variant"] == "td"]

    def td_bu() -> tuple[float, str, bool, str]:
        worst = max(main, key=lambda r: max(r["ratio_of_ratios"], 1 / r["ratio_of_ratios"]))
        return (worst["ratio_of_ratios"], f"{sum(r['within_goal'] for r in main)}/{len(main)} within; worst "
                f"{worst['backbone']} ({worst['ratio_of_ratios']:.2f}x)", all(r["within_goal"] for r in main),
                f"{worst['backbone']}/td")

    legacy = [(m, x) for m, x in _legacy_speedups(report.get("variants", [])) if m.startswith("lenetfc/")]

    def lenet() -> tuple[float, str, bool, str]:
        slowest = min(legacy, key=lambda t: t[1])
        return (slowest[1], ", ".join(f"{m} x{x:.2f}" for m, x in legacy),
                all(x >= GOAL_LEGACY_SPEEDUP for _, x in legacy), slowest[0])

    def worst_speedup(rows: list[dict[str, Any]], key: str, goal: float, counted: bool) -> tuple[float, str, bool, str]:
        slow = min(rows, key=lambda r: r[key])
        count = f"{sum(r[key] >= goal for r in rows)}/{len(rows)} attacks; " if counted else ""
        return (slow[key], f"{count}min x{slow[key]:.1f} ({slow['attack']}), max x{max(r[key] for r in rows):.1f}",
                all(r[key] >= goal for r in rows), slow["attack"])

    def efficiency() -> tuple[float, str, bool, str]:
        rows = [(m["model"], r) for m in eff for r in m["rows"]]
        name, worst = min(rows, key=lambda mr: mr[1]["efficiency"])
        met = sum(r["efficiency"] >= GOAL_EFFICIENCY for _, r in rows)
        return (worst["efficiency"], f"{met}/{len(rows)} (model, attack) pairs; min {worst['efficiency']:.2f} "
                f"({name} {worst['attack']})", met == len(rows), f"{name} {worst['attack']}")

    eff = report.get("efficiency", {}).get("models", [])
    fb2b = [r for r in report.get("foolbox2", {}).get("rows", []) if "speedup_batch" in r]
    fb2 = [r for r in report.get("foolbox2", {}).get("rows", []) if "speedup_per_image" in r]
    best = [r for r in report.get("foolbox2", {}).get("rows", []) if "speedup_best" in r]
    att = report.get("attacks", {}).get("rows", [])
    return [
        _goal(f"NIN-light TD training step >= {GOAL_MFU:.0%} of measured peak (batch 128, CPU, 2 threads)",
              mfu if nl is not None else None),
        _goal(f"ResNet32 BU, TD and TD_uni training steps >= {GOAL_MFU:.0%} of the measured fp32 peak (batch 128, "
              "CPU, 2 threads)", resnet32_mfu if len(r32) == len(RESNET32_ZOO_VARIANTS) else None),
        _goal("TD/BU step-time ratio within 1.2x of the MAC ratio, every backbone (TD variant)",
              td_bu if main else None),
        _goal(f"LeNetFC training steps >= {GOAL_LEGACY_SPEEDUP:.0f}x the images/s of the layers before the "
              "speed-ups (side by side)", lenet if legacy else None),
        _goal(f"engine efficiency >= {GOAL_EFFICIENCY} for every paper attack on LeNetFC-TD, NIN-light TD and "
              "ResNet32-TD (queries x best per-image forward time / wall time)", efficiency if eff else None),
        _goal("every paper attack faster than foolbox 2.2.1 called as the paper did (batched, one thread)",
              (lambda: worst_speedup(fb2b, "speedup_batch", 1.0, True)) if fb2b else None),
        _goal("every paper attack >= 10x foolbox 2.2.1 (per image, same model, images and seeds, one thread)",
              (lambda: worst_speedup(fb2, "speedup_per_image", GOAL_FOOLBOX2_SPEEDUP, True)) if fb2 else None),
        _goal("every paper attack >= 10x foolbox 2.2.1, each library at its fastest thread count (1 or 2)",
              (lambda: worst_speedup(best, "speedup_best", GOAL_FOOLBOX2_SPEEDUP, True)) if best else None),
        _goal("batched attack >= 10x the per-sample loop (every attack)",
              (lambda: worst_speedup(att, "speedup", GOAL_ATTACK_SPEEDUP, False)) if att else None),
    ]


def profile_missed(report: dict[str, Any], device: torch.device, victim: Any, *,
                   reduced: bool) -> list[dict[str, Any]]:
    """torch.profiler top ops of each missed goal's case."""
    out = []
    by_label = {r["label"]: r for r in report.get("models", [])}
    for goal in report["goals"]:
        if goal["met"] is not False or goal["case"] is None:
            continue
        if goal["goal"].startswith("engine efficiency"):  # profiled in its own section
            model, attack = goal["case"].split(" ")
            for m in report.get("efficiency", {}).get("models", []):
                out += [{"goal": goal["goal"], "case": goal["case"], "table": r["profile"]}
                        for r in m["rows"] if m["model"] == model and r["attack"] == attack and "profile" in r]
            continue
        if goal["goal"].startswith("batched attack"):
            if victim is None:
                continue
            steps = report["attacks"]["steps"]
            for batched in (True, False):
                log(f"profile attack {goal['case']} ({'batched' if batched else 'per-sample loop'})")
                out.append({"goal": goal["goal"], "case": f"{goal['case']} {'batched' if batched else 'loop'}",
                            "table": profile_attack(victim, goal["case"], steps, device, batched=batched)})
            continue
        labels = [goal["case"]] if goal["case"] in by_label else []
        if not labels:  # "backbone/td": the TD row and its BU row
            b = goal["case"].split("/")[0]
            labels = [r["label"] for r in report["models"] if r["backbone"] == b and r["variant"] in ("bu", "td")]
        for label in labels:
            row = by_label[label]
            fields = {k: row[k] for k in Case.__dataclass_fields__}
            case = Case(**{**fields, "profile": True, "inference": False, "warmup": 1, "repeats": 1})
            log(f"profile {case.label}")
            out.append({"goal": goal["goal"], "case": label, "table": _measure(case, reduced=reduced)["profile"]})
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    device = resolve_device(args.device)
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    sections = set(args.only or SECTIONS)
    out_dir = args.out if args.out is not None else HERE / "results"
    md_path = (args.out / "RESULTS.md") if args.out is not None else HERE / "RESULTS.md"
    out_dir.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "-m", "benchmarks.run", *(sys.argv[1:] if argv is None else argv)])
    log(f"device {device}, {threads} threads, {'reduced' if args.reduced else 'default'} mode")
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command,
        "mode": "reduced" if args.reduced else "default",
        "machine": machine_info(device, threads),
        "conventions": {
            "train_flops": "3 x 2 x MACs per image (forward 1x, backward 2x: input and weight gradients); "
                           "MACs = conv + dense multiply-accumulates (tdlib.models.model_summary)",
            "infer_flops": "2 x MACs per image",
            "mfu": "achieved FLOP/s / measured peak (max of the fp32 matmul and convs of this run; "
                   "AMP rows: the bf16 matmul)",
            "timing": "time.perf_counter, warm-up iterations, median of the timed repeats",
            "memory": "CPU: resident-set high-water-mark growth during the training steps in a fresh "
                      "process per case (reduced mode: in-process, indicative only); CUDA: max_memory_allocated delta",
            "train_step": "one tdlib.training.train_epoch call on one batch already on the device",
        },
    }
    # the MFU denominator of the training sections (replaced by theirs when they are carried over)
    report["peak"] = measure_peak(device, reduced=args.reduced)
    victim = None
    if "models" in sections:
        report["models"] = run_models(device, threads, report["peak"], reduced=args.reduced)
        report["matched_bu"] = matched_bu(report["models"], reduced=args.reduced)
        report["td_bu_ratios"] = td_bu_ratios(report["models"], report["matched_bu"])
    if "variants" in sections:
        report["variants"] = run_variants(device, threads, report["peak"], report.get("models", []),
                                          reduced=args.reduced)
    if "attacks" in sections:
        att = attack_sweep(device, reduced=args.reduced)
        victim = att.pop("_victim")
        report["attacks"] = att
    if "foolbox2" in sections:
        report["foolbox2"] = foolbox2_comparison(reduced=args.reduced)
    if "efficiency" in sections:
        report["efficiency"] = engine_efficiency(device, reduced=args.reduced,
                                                 profile_below=bool(args.profile_missed))
    if "data" in sections:
        report["data"] = data_pipeline(device, reduced=args.reduced)
    carried = carry_over(report, out_dir / f"report-{device.type}.json", sections,
                         profiled=bool(args.profile_missed))
    report["goals"] = evaluate_goals(report, device, threads)
    if args.profile_missed:
        report["profiles"] = profile_missed(report, device, victim, reduced=args.reduced)
    report["machine"]["load_average_end"] = load_average()
    report["runtime_s"] = time.perf_counter() - t_start
    report["sections"] = {**carried, **{k: {"date": report["date"], "load_average_start":
                                            report["machine"].get("load_average_start"),
                                            "load_average_end": report["machine"]["load_average_end"]}
                                        for k in sorted(sections)}}
    json_path = out_dir / f"report-{device.type}.json"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(render_markdown(report))
    log(f"wrote {json_path} and {md_path} in {report['runtime_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
