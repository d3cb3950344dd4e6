"""``models``, ``train``, ``robustness``, ``explain``: one model or one experiment from the shell.

Every result (text and JSON) names the profile it ran at and the numbers of images behind it.
``robustness`` and ``explain`` build the same parameter records as notebooks 02 and 05.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from tdlib.cli.common import add_common, names, positive_int, print_json
from tdlib.config import run_config
from tdlib.experiments.params import Exp2Params, LocalisationParams


def cmd_models(a: argparse.Namespace) -> int:
    # lazy: tdlib.models imports torch; the CLI loads it only for the subcommand that needs it
    from tdlib.models import summarize_all

    rows = summarize_all()
    if a.json:
        print_json(rows)
        return 0
    print(f"{'backbone':15s}{'variant':8s}{'params':>12s}{'MACs':>16s}  input        final map")
    for r in rows:
        print(f"{r['backbone']:15s}{r['variant']:8s}{r['params']:12,d}{r['macs']:16,d}  "
              f"{'x'.join(map(str, r['input_shape'])):12s} {'x'.join(map(str, r['final_feature_map']))}")
    return 0


def _sizes(data: Any) -> dict[str, int]:
    return {"train_images": len(data.train), "val_images": len(data.val), "test_images": len(data.test)}


def cmd_train(a: argparse.Namespace) -> int:
    # lazy: tdlib.training imports torch; the CLI loads it only for the subcommand that needs it
    from tdlib.training import fit_or_load, get_dataset, mean_std

    cfg = run_config(a.dataset, a.backbone, a.variant, profile=a.profile, epochs=a.epochs,
                     seed=a.seed, root=a.data_root, repetitions=a.repetitions, amp=a.bf16,
                     image_size=a.image_size)
    data = get_dataset(cfg.data)  # data first: nothing is created for a dataset that is missing
    results = [fit_or_load(cfg, rep=r, runs_root=a.run_dir, device=a.device, data=data,
                           progress=not a.json) for r in range(cfg.train.repetitions)]
    summaries = [r.summary() for r in results]
    out: dict[str, Any] = {"profile": a.profile, **_sizes(data)}
    if len(summaries) == 1:
        out.update(summaries[0])
    else:
        out["runs"] = summaries
        out.update({k: summaries[0][k] for k in ("dataset", "backbone", "variant", "epochs",
                                                 "params", "macs")})
        out["test_accuracy"], out["test_accuracy_std"] = mean_std([s["test_accuracy"] for s in summaries])
        out["val_accuracy"] = mean_std([s["val_accuracy"] for s in summaries])[0]
        out["seconds"] = sum(s["seconds"] for s in summaries)
    if a.json:
        print_json(out)
        return 0
    std = out.get("test_accuracy_std")
    spread = f" ± {std:.4f} over {len(summaries)} runs" if std is not None and not math.isnan(std) else ""
    print(f"{cfg.data.dataset} {cfg.model.backbone}/{cfg.model.variant}, profile {a.profile}: "
          f"{out['train_images']:,} training / {out['test_images']:,} test images, "
          f"{cfg.train.epochs} epochs: test accuracy {out['test_accuracy']:.4f}{spread}, "
          f"val {out['val_accuracy']:.4f}, {out['seconds']:.1f} s, {out['params']:,} params, "
          f"{out['macs']:,} MACs")
    return 0


def _pretrained(a: argparse.Namespace) -> bool | None:
    return {"auto": None, "yes": True, "no": False}[a.pretrained]


def cmd_robustness(a: argparse.Namespace) -> int:
    # lazy: tdlib.experiments.robustness imports torch; the CLI loads it only for this subcommand
    from tdlib.experiments import robustness as exp2

    params = Exp2Params.from_values(
        PROFILE=a.profile, SEED=a.seed, DATA_DIR=a.data_root, RUN_DIR=a.run_dir, DEVICE=a.device,
        DATASETS=[a.dataset], BACKBONES=[a.backbone], VARIANTS=a.variant, ATTACKS=a.attacks,
        WHITEBOX=[], PROTOCOL=a.protocol, N_SAMPLES=a.n_samples, REPETITIONS=a.reps,
        FOURIER=False, PRETRAINED=_pretrained(a))
    params.common.check_environment()
    result = exp2.run(params, progress=not a.json)
    rows = [s for r in result.runs for s in r.summaries()]
    models = [{"model": r.provided.ref.label, "test_accuracy": r.provided.ref.test_accuracy,
               "test_images": r.provided.ref.test_images, "attacked_images": len(r.y),
               "results_dir": str(r.folder)} for r in result.runs]
    if a.json:
        print_json({"profile": a.profile, "protocol": a.protocol, "repetitions": params.reps,
                    "models": models, "attacks": rows,
                    "claims": [c.to_json() for c in result.record.attack_rows()]})
        return 0
    for m in models:
        print(f"{m['model']}, profile {a.profile}: clean accuracy {m['test_accuracy']:.2f}% on "
              f"{m['test_images']:,} test images; {m['attacked_images']} images attacked, "
              f"{params.reps} repetition(s), protocol {a.protocol}")
    print(f"{'model':22s}{'attack':20s}{'success %':>10s}{'median L2':>11s}{'AUC':>8s}{'seconds':>9s}")
    for r in rows:
        print(f"{r['backbone'] + '/' + r['variant']:22s}{r['attack']:20s}{r['success_rate']:10.1f}"
              f"{r['median_l2']:11.3f}{r['auc']:8.3f}{r['seconds']:9.1f}")
    return 0


def cmd_explain(a: argparse.Namespace) -> int:
    # lazy: tdlib.experiments.explain imports torch; the CLI loads it only for this subcommand
    from tdlib.experiments import explain as exp3

    params = LocalisationParams.from_values(
        PROFILE=a.profile, SEED=a.seed, DATA_DIR=a.data_root, RUN_DIR=a.run_dir, DEVICE=a.device,
        DATASETS=[a.dataset], VARIANTS=a.variant, N_IMAGES=a.n_images, PRETRAINED=_pretrained(a))
    params.common.check_environment()
    result = exp3.run_localisation(params, progress=not a.json)
    agg = exp3.aggregate(result.record)
    claims = [c.to_json() for c in result.record.claim_rows()]
    if a.json:
        print_json({"profile": a.profile, "images": params.images,
                    "models": [m.ref.label for m in result.models], "aggregate": agg,
                    "claims": claims})
        return 0
    print(f"profile {a.profile}: {params.images} test images per model; models: "
          + ", ".join(m.ref.label for m in result.models))
    print(f"{'variant':8s}{'stage':8s}{'protocol':16s}{'energy on object':>18s}{'pointing':>10s}")
    for r in sorted(agg, key=lambda r: (r["protocol"], r["stage"], r["variant"])):
        print(f"{r['variant']:8s}{r['stage']:8s}{r['protocol']:16s}{r['energy']:18.3f}{r['pointing']:10.3f}")
    for c in claims:
        print(f"claim {c['claim']} ({c['scope']}): {c['verdict']} ({c['reason']})")
    return 0


def register(sub: Any) -> None:
    """Add the subcommands to the CLI's subparsers."""
    p = sub.add_parser("models", help="params, MACs, input and final feature-map size of every model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train", help="train (or resume, or reuse) one model (Exp 1)")
    p.add_argument("--dataset", required=True, help="mnist, fashion_mnist, cifar10, cifar10_aug, imagenette")
    p.add_argument("--backbone", required=True, help="lenetfc, nin_light, nin, resnet32, resnet18_half")
    p.add_argument("--variant", default="td", help="bu, td, td_uni, td_rev (default td)")
    p.add_argument("--epochs", type=positive_int, default=None, help="override the profile's epochs")
    p.add_argument("--repetitions", type=positive_int, default=1,
                   help="repetitions with seeds seed..seed+R-1 (default 1)")
    p.add_argument("--image-size", type=positive_int, default=None,
                   help="imagenette only: crop size (paper 128; the resize keeps the paper's 128/156)")
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast (CUDA or CPU; default fp32 as the paper); its own run folder")
    add_common(p)
    p.set_defaults(func=cmd_train)

    pre = {"choices": ("auto", "yes", "no"), "default": "auto",
           "help": "models from the pretrained zoo: auto (the profile decides; quick: yes), yes, no"}

    p = sub.add_parser("robustness", help="attack BU/TD models on the same test images (Exp 2)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--backbone", required=True)
    p.add_argument("--variant", type=names, default=["bu", "td"], help="comma-separated (default bu,td)")
    p.add_argument("--attacks", type=names, default=None,
                   help="comma-separated attack names (default: the profile's)")
    p.add_argument("--n-samples", type=positive_int, default=None, help="test images attacked")
    p.add_argument("--reps", type=positive_int, default=None, help="repetitions per attack (paper: 3)")
    p.add_argument("--protocol", default="paper", help="paper (foolbox 2 semantics) or minimal")
    p.add_argument("--pretrained", **pre)
    add_common(p)
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser("explain", help="Grad-CAM localisation of NIN-light BU/TD (Exp 3)")
    p.add_argument("--dataset", required=True, help="mnist or fashion_mnist")
    p.add_argument("--variant", type=names, default=["bu", "td"], help="comma-separated (default bu,td)")
    p.add_argument("--n-images", type=positive_int, default=None, help="test images scored")
    p.add_argument("--pretrained", **pre)
    add_common(p)
    p.set_defaults(func=cmd_explain)
