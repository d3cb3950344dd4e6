"""Attacks, Grad-CAM and training on a device that is not the default one (CUDA, else MPS).

Skipped where the machine has neither. ``scripts/gpu_check.py`` runs this file first on a GPU
machine (with a zoo check of its own).
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from tdlib.attacks import ATTACKS, LINF_ATTACKS, PROTOCOLS, WHITEBOX_ATTACKS, run_attack
from tdlib.models import build_model


def _other_device() -> torch.device | None:
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return None


DEVICE = _other_device()
needs_device = pytest.mark.skipif(DEVICE is None, reason="no CUDA or MPS device: the CPU is the only one here")


@pytest.fixture(scope="module")
def victim() -> tuple[nn.Module, Tensor, Tensor]:
    """An (untrained) LeNetFC-TD on the device and 6 MNIST-sized images labelled with its own
    predictions, so that every image is attacked."""
    assert DEVICE is not None
    torch.manual_seed(0)
    model = build_model("lenetfc", "td").eval().to(DEVICE)
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        y = model(x.to(DEVICE)).argmax(1).cpu()
    return model, x, y


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("attack", ATTACKS)
@needs_device
def test_every_attack_of_every_protocol_runs_on_the_device(victim: tuple[nn.Module, Tensor, Tensor],
                                                           attack: str, protocol: str) -> None:
    model, x, y = victim
    eps = 0.3 if attack in LINF_ATTACKS else (3.0 if attack in WHITEBOX_ATTACKS else None)
    res = run_attack(model, x, y, attack, protocol=protocol, steps=20, batch_size=4, epsilon=eps)
    assert res.x_adv.device.type == "cpu" and res.x_adv.shape == x.shape
    assert bool(res.clean_correct.all())
    with torch.no_grad():
        pred = model(res.x_adv.to(DEVICE)).argmax(1).cpu()
    assert bool((pred[res.success] != y[res.success]).all())  # every success verified on the device
    assert torch.equal(res.x_adv[~res.success], x[~res.success])


@needs_device
def test_paper_attack_on_the_device_matches_the_cpu(victim: tuple[nn.Module, Tensor, Tensor]) -> None:
    """Same seeds, same scans: the device changes no decision far from the boundary."""
    model, x, y = victim
    on_dev = run_attack(model, x, y, "contrast_reduction", steps=50)
    cpu_model = build_model("lenetfc", "td").eval()
    cpu_model.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    on_cpu = run_attack(cpu_model, x, y, "contrast_reduction", steps=50)
    assert torch.equal(on_dev.success, on_cpu.success)
    assert torch.allclose(on_dev.l2[on_dev.success], on_cpu.l2[on_cpu.success], atol=0.05)


@needs_device
def test_gradcam_on_the_device(victim: tuple[nn.Module, Tensor, Tensor]) -> None:
    from tdlib.explain import gradcam

    model, x, y = victim
    for normalisation in ("library", "paper"):
        maps = gradcam(model, x, targets=y, normalisation=normalisation)
        assert maps.shape == (6, 28, 28) and maps.device.type == "cpu"
        assert bool(torch.isfinite(maps).all()) and float(maps.min()) >= 0 and float(maps.max()) <= 1
    assert DEVICE is not None and next(model.parameters()).device.type == DEVICE.type  # left where it was


@needs_device
def test_a_few_training_steps_on_the_device() -> None:
    from tdlib.config import TrainConfig
    from tdlib.data.datasets import ArrayDataset
    from tdlib.training import make_optimizer, train_epoch
    from tdlib.training.engine import evaluate

    assert DEVICE is not None
    torch.manual_seed(0)
    model = build_model("lenetfc", "td").to(DEVICE)
    g = torch.Generator().manual_seed(0)
    data = ArrayDataset(x=torch.randint(0, 256, (96, 1, 28, 28), dtype=torch.uint8, generator=g),
                        y=torch.randint(0, 10, (96,), generator=g))
    opt = make_optimizer(model, TrainConfig(epochs=1, lr=0.05))
    before = [p.detach().clone() for p in model.parameters()]
    stats = train_epoch(model, data, opt, batch_size=32, generator=torch.Generator().manual_seed(1),
                        device=DEVICE)
    assert stats.loss == stats.loss and 0.0 <= stats.accuracy <= 1.0  # finite, not NaN
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert all(p.device.type == DEVICE.type for p in model.parameters())
    ev = evaluate(model, data, device=DEVICE)
    assert 0.0 <= ev.accuracy <= 1.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present: the check would run")
def test_gpu_check_refuses_to_run_without_a_gpu() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no CUDA GPU is available") and proc.stdout == ""
