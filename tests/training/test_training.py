"""Training: recipe details, resumption, checkpoint safety, reuse, data parallelism, CLI, and the
CLI's training killed with -9 mid-epoch or run twice at once."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tdlib.config import TrainConfig, run_config
from tdlib.errors import CheckpointError
from tdlib.models import build_model
from tdlib.training import (
    decay_groups,
    fit_or_load,
    get_dataset,
    load_checkpoint,
    make_optimizer,
    make_scheduler,
    mean_std,
    run_folder,
    save_checkpoint,
)

REPO = Path(__file__).resolve().parents[2]


def smoke_cfg(variant: str = "td", epochs: int = 2, seed: int = 0):  # type: ignore[no-untyped-def]
    return run_config("mnist", "lenetfc", variant, profile="smoke", epochs=epochs, seed=seed)


def test_one_step_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model = build_model("lenetfc", "td")
    data = get_dataset(smoke_cfg().data)
    x, y = data.train.images()[:64], data.train.y[:64]
    opt = make_optimizer(model, TrainConfig(epochs=1, lr=0.05))
    model.train()
    losses = []
    for _ in range(2):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    model.eval()
    with torch.no_grad():
        after = float(F.cross_entropy(model(x), y))
    model.train()
    assert after < losses[0]


def test_weight_decay_groups_follow_keras_semantics() -> None:
    model = build_model("resnet32", "td")
    groups = decay_groups(model, 5e-4)
    kernels, rest = groups
    assert kernels["weight_decay"] == pytest.approx(1e-3)  # Keras l2(wd) == torch decay 2 wd
    assert rest["weight_decay"] == 0.0
    n_kernel = sum(1 for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear))
    assert len(kernels["params"]) == n_kernel  # type: ignore[arg-type]
    ids = {id(p) for p in kernels["params"]}  # type: ignore[attr-defined]
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert id(m.weight) not in ids and id(m.bias) not in ids
    total = sum(len(g["params"]) for g in groups)  # type: ignore[arg-type]
    assert total == len(list(model.parameters()))
    opt = make_optimizer(model, TrainConfig(epochs=1, weight_decay=5e-4))
    assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9


def test_scheduler_drops_at_ceil_half_and_four_fifths() -> None:
    cfg = TrainConfig(epochs=10, lr=0.1)
    model = torch.nn.Linear(2, 2)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.1] * 5 + [0.01] * 3 + [0.001] * 2)
    assert lrs == pytest.approx([cfg.lr_at(e) for e in range(10)])


def test_mean_std_uses_ddof_one() -> None:
    m, s = mean_std([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and s == pytest.approx(1.2909944)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resume_after_interruption_gives_identical_weights(tmp_path: Path) -> None:
    cfg = smoke_cfg(epochs=3)
    full = fit_or_load(cfg, runs_root=tmp_path / "a", device="cpu", progress=False)
    part = fit_or_load(cfg, runs_root=tmp_path / "b", device="cpu", progress=False, max_epochs=1)
    folder = run_folder(cfg, 0, tmp_path / "b")
    assert (folder / "checkpoint.pt").is_file() and not (folder / "DONE.json").exists()
    assert len(json.loads((folder / "history.json").read_text())) == 1
    resumed = fit_or_load(cfg, runs_root=tmp_path / "b", device="cpu", progress=False)
    assert not resumed.reused and len(resumed.history) == 3
    a, b = _weights(full.model), _weights(resumed.model)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.test_accuracy == full.test_accuracy
    assert part.history[0] == resumed.history[0]


def test_finished_run_is_reused(tmp_path: Path) -> None:
    cfg = smoke_cfg(epochs=1)
    first = fit_or_load(cfg, runs_root=tmp_path, device="cpu", progress=False)
    again = fit_or_load(cfg, runs_root=tmp_path, device="cpu", progress=False)
    assert again.reused and again.test_accuracy == first.test_accuracy
    x = get_dataset(cfg.data).test.images()[:8]
    with torch.no_grad():
        assert torch.equal(first.model(x), again.model(x))
    folder = run_folder(cfg, 0, tmp_path)
    assert {p.name for p in folder.iterdir()} >= {"model.pt", "result.json", "DONE.json",
                                                  "history.json", "history.csv"}


def test_checkpoint_of_another_config_is_refused(tmp_path: Path) -> None:
    a, b = smoke_cfg(epochs=2), smoke_cfg(epochs=2, seed=5)
    fit_or_load(a, runs_root=tmp_path, device="cpu", progress=False, max_epochs=1)
    src = run_folder(a, 0, tmp_path) / "checkpoint.pt"
    dst = run_folder(b, 0, tmp_path) / "checkpoint.pt"
    dst.parent.mkdir(parents=True)
    dst.write_bytes(src.read_bytes())
    with pytest.raises(CheckpointError, match="written for config .* not for this run's config"):
        fit_or_load(b, runs_root=tmp_path, device="cpu", progress=False)
    assert dst.is_file()  # nothing deleted


def test_checkpoint_of_another_architecture_is_refused(tmp_path: Path) -> None:
    model = build_model("lenetfc", "td")
    save_checkpoint(tmp_path / "c.pt", {"signature": "0" * 16, "config_hash": "x",
                                        "model": model.state_dict()})
    from tdlib.training import model_signature

    with pytest.raises(CheckpointError, match="another architecture"):
        load_checkpoint(tmp_path / "c.pt", signature=model_signature(model))


def test_truncated_checkpoint_is_refused(tmp_path: Path) -> None:
    cfg = smoke_cfg(epochs=2)
    fit_or_load(cfg, runs_root=tmp_path, device="cpu", progress=False, max_epochs=1)
    ckpt = run_folder(cfg, 0, tmp_path) / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="unreadable .*truncated or corrupted.*delete it"):
        fit_or_load(cfg, runs_root=tmp_path, device="cpu", progress=False)


class Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo pwned > /dev/null",))


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "evil.pt"
    torch.save({"format": "tdlib-checkpoint-v1", "payload": Evil()}, p)
    with pytest.raises(CheckpointError, match="arbitrary Python objects"):
        load_checkpoint(p)
    p.write_bytes(pickle.dumps({"a": Evil()}))
    with pytest.raises(CheckpointError):
        load_checkpoint(p)


def test_cli_train_json(tmp_path: Path) -> None:
    env = {**os.environ, "TDLIB_RUNS": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "tdlib", "train", "--dataset", "mnist", "--backbone", "lenetfc",
         "--variant", "bu", "--profile", "smoke", "--json", "--device", "cpu"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    for key in ("test_accuracy", "val_accuracy", "epochs", "seconds", "params", "macs"):
        assert key in res
    assert res["params"] == 7670 and res["epochs"] == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--dataset", "mnsit", "--backbone", "lenetfc"], "unknown dataset 'mnsit'"),
        (["--dataset", "mnist", "--backbone", "vgg"], "unknown backbone 'vgg'"),
        (["--dataset", "mnist", "--backbone", "lenetfc", "--variant", "td_x"], "unknown variant"),
        (["--dataset", "mnist", "--backbone", "lenetfc", "--profile", "huge"], "unknown profile"),
        (["--dataset", "mnist", "--backbone", "lenetfc", "--epochs", "0"], "--epochs: expected an integer >= 1"),
        (["--dataset", "mnist", "--backbone", "lenetfc", "--device", "cuda:7"], "CUDA"),
    ],
)
def test_cli_bad_input_one_clear_error(tmp_path: Path, args: list[str], fragment: str) -> None:
    if "cuda:7" in args and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    env = {**os.environ, "TDLIB_RUNS": str(tmp_path / "runs")}
    out = subprocess.run([sys.executable, "-m", "tdlib", "train", "--profile", "smoke", *args]
                         if "--profile" not in args else
                         [sys.executable, "-m", "tdlib", "train", *args],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], out.stderr
    assert not (tmp_path / "runs" / "train").exists() or not any((tmp_path / "runs" / "train").rglob("*.pt"))


def test_ddp_two_processes_keep_replicas_identical(tmp_path: Path) -> None:
    env = {**os.environ, "TDLIB_RUNS": str(tmp_path), "OMP_NUM_THREADS": "1", "TDLIB_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "tdlib", "train", "--dataset", "mnist", "--backbone", "lenetfc", "--variant", "td",
         "--profile", "smoke", "--epochs", "2", "--json", "--device", "cpu"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    objs = [json.loads(chunk) for chunk in _json_objects(out.stdout)]
    assert len(objs) == 2  # both ranks report
    assert all(o["replicas_identical"] and o["world_size"] == 2 for o in objs)
    assert objs[0]["test_accuracy"] == objs[1]["test_accuracy"]
    folders = list((tmp_path / "train").glob("*/rep0/DONE.json"))
    assert len(folders) == 1  # same folder layout, written once by rank 0


def _json_objects(text: str) -> list[str]:
    objs, depth, start = [], 0, None
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
            if depth == 1:
                start = i
        elif ch == "}":
            depth -= 1
            if depth == 0 and start is not None:
                objs.append(text[start : i + 1])
    return objs


def test_bn_recalibration_gives_exact_batch_statistics() -> None:
    from tdlib.data import ArrayDataset
    from tdlib.training.engine import recalibrate_bn

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3, momentum=0.01),
                                torch.nn.Dropout(0.5))
    x = (torch.rand(64, 1, 8, 8) * 255).to(torch.uint8)
    data = ArrayDataset(x, torch.zeros(64, dtype=torch.long))
    rng = torch.get_rng_state()
    recalibrate_bn(model, data, device=torch.device("cpu"), batch_size=64)
    assert torch.equal(rng, torch.get_rng_state())  # no randomness consumed (dropout stayed off)
    feats = model[0](x.float() / 255)
    assert torch.allclose(model[1].running_mean, feats.mean((0, 2, 3)), atol=1e-5)
    assert model[1].momentum == 0.01 and model.training


def _class_sorted(n_classes: int = 4, per_class: int = 25):  # type: ignore[no-untyped-def]
    """uint8 images stored sorted by class (as Imagenette's training split), class c = grey 60 c."""
    from tdlib.data import ArrayDataset

    y = torch.arange(n_classes).repeat_interleave(per_class)
    x = (y * 60).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous()
    return ArrayDataset(x, y)


def test_bn_recalibration_uses_a_seeded_random_subset_not_the_first_images() -> None:
    import random

    import numpy as np

    from tdlib.training.engine import bn_subset, recalibrate_bn

    data = _class_sorted()
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(1, momentum=0.01))
    states = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    recalibrate_bn(model, data, device=torch.device("cpu"), batch_size=10, max_images=40, seed=7)
    assert torch.equal(states[0], torch.get_rng_state())  # torch's global RNG untouched
    assert np.array_equal(states[1], np.random.get_state()[1]) and states[2] == random.getstate()
    subset = bn_subset(len(data), 40, seed=7)
    assert len(subset) == 40 and len(set(subset.tolist())) == 40
    assert len(torch.unique(data.y[subset])) == 4  # the first 40 would hold two classes only
    expected = data.x[subset].float().mean() / 255
    assert model[0].running_mean.item() == pytest.approx(float(expected), abs=1e-6)
    assert torch.equal(bn_subset(len(data), 40, seed=7), subset)  # deterministic
    assert not torch.equal(bn_subset(len(data), 40, seed=8), subset)
    # a batch is a random mix of classes, so the running variance includes the between-class spread
    assert len(torch.unique(data.y[subset[:10]])) > 1
    assert sorted(bn_subset(30, 2000, seed=0).tolist()) == list(range(30))  # small sets: all images


def test_fit_derives_the_bn_subset_seed_from_the_run_seed_and_epoch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tdlib.training import fit as fit_mod

    seen: list[int] = []
    real = fit_mod.recalibrate_bn

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_mod, "recalibrate_bn", spy)
    cfg = smoke_cfg(variant="bu", epochs=2, seed=3)
    assert cfg.train.bn_recalibration
    fit_or_load(cfg, runs_root=tmp_path, device="cpu", progress=False)
    assert seen == [3 * 1_000_003 + 0, 3 * 1_000_003 + 1]  # distinct per epoch, from the run seed


# --------------------------------------------------------------------------- processes: kill -9, two at once
TRAIN = [sys.executable, "-m", "tdlib", "train", "--dataset", "mnist", "--backbone", "nin_light",
         "--variant", "bu", "--profile", "smoke", "--epochs", "3", "--device", "cpu", "--json"]


def _env(runs: Path) -> dict[str, str]:
    return {**os.environ, "TDLIB_RUNS": str(runs), "TDLIB_THREADS": "1"}


def test_kill_minus_nine_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    cfg = run_config("mnist", "nin_light", "bu", profile="smoke", epochs=3)
    # the uninterrupted reference: the same command, same environment (threads change float order)
    ref = subprocess.run(TRAIN, env=_env(tmp_path / "ref"), cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert ref.returncode == 0, ref.stderr
    reference = json.loads(ref.stdout)
    ref_weights = load_checkpoint(run_folder(cfg, 0, tmp_path / "ref") / "model.pt")["model"]

    runs = tmp_path / "killed"
    folder = run_folder(cfg, 0, runs)
    proc = subprocess.Popen(TRAIN, env=_env(runs), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        hist = folder / "history.json"
        if hist.is_file() and len(json.loads(hist.read_text())) >= 1:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)  # mid-epoch 2 (epoch 1 is checkpointed)
    proc.wait()
    assert not (folder / "DONE.json").exists()
    ckpt = load_checkpoint(folder / "checkpoint.pt")
    assert 1 <= ckpt["epoch"] < 3

    out = subprocess.run(TRAIN, env=_env(runs), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    resumed = json.loads(out.stdout)
    assert resumed["test_accuracy"] == reference["test_accuracy"]
    weights = load_checkpoint(folder / "model.pt")["model"]
    assert weights.keys() == ref_weights.keys()
    for k, v in ref_weights.items():
        assert torch.equal(weights[k], v), k


def test_two_processes_same_config_do_not_corrupt_each_other(tmp_path: Path) -> None:
    cmd = [*TRAIN[:TRAIN.index("--epochs") + 1], "1", "--device", "cpu", "--json"]
    procs = [subprocess.Popen(cmd, env=_env(tmp_path), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    results = [json.loads(o[0]) for o in outs]
    assert results[0]["test_accuracy"] == results[1]["test_accuracy"]
    assert sorted(r["reused"] for r in results) == [False, True]  # one trained, one waited and reused
