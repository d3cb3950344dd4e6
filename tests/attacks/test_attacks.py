"""Contracts of tdlib.attacks.run_attack and the resumable sweep, on tiny synthetic models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from tdlib.attacks import (
    ATTACKS,
    PAPER_ATTACKS,
    PROTOCOLS,
    REGISTRIES,
    WHITEBOX_ATTACKS,
    AttackResult,
    protocol_registry,
    robustness_sweep,
    run_attack,
)
from tdlib.attacks import sweep as sweep_mod
from tdlib.errors import ConfigError, InputShapeError, UnknownNameError

SIZE, CLASSES = 8, 3


def _templates() -> Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(CLASSES, 1, SIZE, SIZE, generator=g) > 0.5).float()


def _data(n: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    x = (0.6 * _templates()[y] + 0.4 * torch.rand(n, 1, SIZE, SIZE, generator=g)).clamp(0, 1)
    return x, y


@pytest.fixture(scope="module")
def net() -> nn.Module:
    """A small conv net trained for a few steps on template images (accuracy ~100%)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * SIZE * SIZE, CLASSES))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(40):
        x, y = _data(64, 100 + step)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def batch(net: nn.Module) -> tuple[Tensor, Tensor]:
    """8 samples; two labels flipped so that some clean inputs are misclassified."""
    x, y = _data(8, 1)
    y = y.clone()
    y[:2] = (y[:2] + 1) % CLASSES
    with torch.no_grad():
        acc = (net(x).argmax(1) == y).float().mean().item()
    assert 0.5 <= acc < 1.0
    return x, y


class BrightPixel(nn.Module):
    """Class 1 iff some pixel (mean over channels) exceeds 0.9: one bright pixel flips class 0."""

    def forward(self, x: Tensor) -> Tensor:
        score = 20.0 * (x.mean(dim=1).flatten(1).amax(dim=1) - 0.9)
        return torch.stack([torch.zeros_like(score), score], dim=1)


def _accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def test_registry() -> None:
    assert len(PAPER_ATTACKS) == 10
    assert set(PAPER_ATTACKS) | set(WHITEBOX_ATTACKS) == set(ATTACKS)
    assert tuple(REGISTRIES) == PROTOCOLS == ("paper", "minimal")
    for protocol in PROTOCOLS:
        assert tuple(protocol_registry(protocol)) == ATTACKS, protocol
    paper, minimal = REGISTRIES["paper"], REGISTRIES["minimal"]
    differ = {a for a in ATTACKS if paper[a] is not minimal[a]}
    assert differ == {"single_pixel", "salt_and_pepper", "pointwise", "additive_gaussian", "additive_uniform",
                      "blended_uniform", "spatial", "shifts"}
    with pytest.raises(UnknownNameError, match="protocol"):
        protocol_registry("v2")


def test_attacks_never_look_at_the_protocol() -> None:
    """The protocol picks a registry once; implementations get no protocol to branch on."""
    import dataclasses

    import tdlib.attacks as pkg
    from tdlib.attacks.base import AttackContext

    assert "protocol" not in {f.name for f in dataclasses.fields(AttackContext)}
    for mod in pkg.__path__:
        for path in sorted(Path(mod).glob("*.py")):
            assert "ctx.protocol" not in path.read_text(), path


@pytest.mark.parametrize("attack", PAPER_ATTACKS)
def test_paper_attack_contract(net: nn.Module, batch: tuple[Tensor, Tensor], attack: str) -> None:
    """Never raises accuracy; codes 0 / inf / direct L2; input untouched; x_adv in [0, 1]."""
    x, y = batch
    x_before = x.clone()
    res = run_attack(net, x, y, attack, steps=200, batch_size=5)
    assert torch.equal(x, x_before)
    assert res.x_adv.shape == x.shape and res.l2.dtype == torch.float64
    assert float(res.x_adv.min()) >= 0.0 and float(res.x_adv.max()) <= 1.0
    assert _accuracy(net, res.x_adv, y) <= _accuracy(net, x, y)
    with torch.no_grad():
        pred = net(res.x_adv).argmax(1)
    assert bool((pred[res.success] != y[res.success]).all())
    assert bool((res.success <= res.clean_correct).all())
    direct = (res.x_adv.double() - x.double()).flatten(1).norm(dim=1)
    assert torch.allclose(res.l2[res.success], direct[res.success])
    assert bool((res.l2[~res.clean_correct] == 0).all())
    failed = res.clean_correct & ~res.success
    assert bool(torch.isinf(res.l2[failed]).all())
    assert torch.equal(res.x_adv[~res.success], x[~res.success])
    if attack != "single_pixel":  # the smooth toy net resists one pixel; see BrightPixel below
        assert bool(res.success.any())


@pytest.mark.parametrize("attack", ["additive_gaussian", "contrast_reduction", "spatial", "fgsm"])
def test_minimal_protocol_contract(net: nn.Module, batch: tuple[Tensor, Tensor],
                                   attack: str) -> None:
    x, y = batch
    res = run_attack(net, x, y, attack, protocol="minimal", steps=100)
    assert _accuracy(net, res.x_adv, y) <= _accuracy(net, x, y)
    direct = (res.x_adv.double() - x.double()).flatten(1).norm(dim=1)
    assert torch.allclose(res.l2[res.success], direct[res.success])


@pytest.mark.parametrize("attack", [*PAPER_ATTACKS, *WHITEBOX_ATTACKS])
def test_epsilon_zero_changes_nothing(net: nn.Module, batch: tuple[Tensor, Tensor],
                                      attack: str) -> None:
    x, y = batch
    res = run_attack(net, x, y, attack, steps=20, epsilon=0.0)
    assert not bool(res.success.any())
    assert torch.equal(res.x_adv, x)
    assert _accuracy(net, res.x_adv, y) == _accuracy(net, x, y)


@pytest.mark.parametrize("protocol", ["paper", "minimal"])
def test_single_pixel_changes_one_location(protocol: str) -> None:
    model = BrightPixel().eval()
    x = 0.2 + 0.2 * torch.rand(6, 3, 7, 7, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(6, dtype=torch.long)
    res = run_attack(model, x, y, "single_pixel", protocol=protocol, seed=3)
    assert bool(res.success.all())
    changed = (res.x_adv != x).any(dim=1)  # (N, H, W)
    assert changed.flatten(1).sum(dim=1).tolist() == [1] * 6
    loc = changed.unsqueeze(1).expand_as(x)
    assert bool((res.x_adv[loc] == 1.0).all())  # all channels at max (min does not flip)
    assert torch.allclose(res.l2, (1 - x)[loc].view(6, 3).double().norm(dim=1))


def test_minimal_never_worse_than_paper_on_grid_attacks(net: nn.Module,
                                                        batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    for attack in ("shifts", "single_pixel"):
        paper = run_attack(net, x, y, attack, seed=1)
        minimal = run_attack(net, x, y, attack, protocol="minimal", seed=1)
        assert bool((minimal.l2 <= paper.l2 + 1e-9).all())


@pytest.mark.parametrize("attack,eps", [("fgsm", 0.05), ("l2_pgd", 0.5), ("cw", 0.5)])
def test_whitebox_respects_bound(net: nn.Module, batch: tuple[Tensor, Tensor], attack: str,
                                 eps: float) -> None:
    x, y = batch
    res = run_attack(net, x, y, attack, steps=10, epsilon=eps)
    delta = (res.x_adv - x).flatten(1)
    norm = delta.abs().amax(1) if attack == "fgsm" else delta.norm(dim=1)
    assert bool((norm <= eps + 1e-5).all())
    assert _accuracy(net, res.x_adv, y) <= _accuracy(net, x, y)


def test_whitebox_unbounded_finds_adversarials(net: nn.Module, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    for attack in WHITEBOX_ATTACKS:
        res = run_attack(net, x, y, attack, steps=30)
        assert bool(res.success.any()), attack


@pytest.mark.parametrize("attack", ["single_pixel", "salt_and_pepper", "additive_uniform"])
def test_reimplemented_attacks_deterministic_and_batch_independent(
        net: nn.Module, batch: tuple[Tensor, Tensor], attack: str) -> None:
    x, y = batch
    a = run_attack(net, x, y, attack, seed=7, batch_size=3, steps=300)
    b = run_attack(net, x, y, attack, seed=7, batch_size=8, steps=300)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.l2, b.l2)


def test_training_mode_rejected(batch: tuple[Tensor, Tensor]) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(SIZE * SIZE, CLASSES))
    with pytest.raises(ConfigError, match="eval"):
        run_attack(model.train(), *batch, "contrast_reduction")


def test_bad_inputs_rejected(net: nn.Module, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    with pytest.raises(InputShapeError, match=r"\[0, 1\]"):
        run_attack(net, x * 2.0, y, "contrast_reduction")
    with pytest.raises(InputShapeError, match=r"\[0, 1\]"):
        run_attack(net, x - 0.5, y, "contrast_reduction")
    with pytest.raises(InputShapeError, match="N, C, H, W"):
        run_attack(net, x[0], y, "contrast_reduction")
    with pytest.raises(InputShapeError, match="labels"):
        run_attack(net, x, y[:3], "contrast_reduction")
    with pytest.raises(UnknownNameError, match="accepted"):
        run_attack(net, x, y, "deepfool")
    with pytest.raises(UnknownNameError):
        run_attack(net, x, y, "spatial", protocol="v2")
    with pytest.raises(ConfigError):
        run_attack(net, x, y, "fgsm", epsilon=-1.0)


def test_sweep_resumes_and_writes_summary(net: nn.Module, batch: tuple[Tensor, Tensor],
                                          tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = batch
    attacks = ["single_pixel", "contrast_reduction"]
    calls: list[tuple[str, int]] = []
    real = sweep_mod.run_attack

    def counting(*args: object, **kwargs: object) -> AttackResult:
        calls.append((str(args[3]), int(kwargs["seed"])))  # type: ignore[call-overload]
        if len(calls) == 4 and fail_after_three:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sweep_mod, "run_attack", counting)
    fail_after_three = True
    with pytest.raises(KeyboardInterrupt):
        robustness_sweep(net, x, y, attacks, out_dir=tmp_path, reps=3, steps=50, progress=False)
    assert sorted(p.name for p in tmp_path.rglob("rep*.pt")) == ["rep0.pt", "rep1.pt", "rep2.pt"]
    assert not (tmp_path / "summary.json").exists()

    fail_after_three = False
    calls.clear()
    merged = robustness_sweep(net, x, y, attacks, out_dir=tmp_path, reps=3, steps=50,
                              progress=False)
    assert [c[0] for c in calls] == ["contrast_reduction"] * 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == set(attacks) and set(merged) == set(attacks)
    assert summary["contrast_reduction"]["n"] == x.shape[0]

    calls.clear()  # complete: nothing reruns, same merged result
    again = robustness_sweep(net, x, y, attacks, out_dir=tmp_path, reps=3, steps=50,
                             progress=False)
    assert calls == []
    assert torch.equal(again["single_pixel"].l2, merged["single_pixel"].l2)
    with pytest.raises(ConfigError, match="another sweep"):
        robustness_sweep(net, x, y, attacks, out_dir=tmp_path, reps=1, seed=5, steps=50,
                         progress=False)


def test_batched_blur_and_contrast_match_foolbox(net: nn.Module, batch: tuple[Tensor, Tensor]) -> None:
    """The early-exit scans give foolbox's per-sample answer (blur: same sigma schedule and filter;
    contrast: foolbox 3 scans e = k/steps for k = 0..steps-1, ours k = 1..steps as foolbox 2)."""
    from tdlib.attacks import fbox, linear
    from tdlib.attacks.base import AttackContext

    x, y = batch
    net.eval()
    ok = net(x).argmax(1) == y
    x, y = x[ok], y[ok]
    index = torch.arange(len(y))
    ctx = AttackContext(model=net, steps=50, epsilon=None, seed=0,
                        device=torch.device("cpu"), batch_size=16)
    ours, found = linear.gaussian_blur(ctx, x, y, index)
    ref, ref_found = fbox.gaussian_blur(ctx, x, y, index)
    assert torch.equal(found.cpu(), ref_found.cpu())
    assert torch.allclose(ours[found], ref[found], atol=1e-5)
    ours_c, found_c = linear.contrast_reduction(ctx, x, y, index)
    # foolbox 3 with steps + 1 covers our grid e = k / steps shifted by one step
    ref_c, ref_found_c = fbox.contrast_reduction(
        AttackContext(model=net, steps=50, epsilon=None, seed=0,
                      device=torch.device("cpu"), batch_size=16), x, y, index)
    assert torch.equal(found_c.cpu(), ref_found_c.cpu() | found_c.cpu())
    l2_ours = (ours_c - x).flatten(1).norm(dim=1)[found_c]
    l2_ref = (ref_c - x).flatten(1).norm(dim=1)[found_c]
    assert torch.all(l2_ours >= l2_ref - 1e-5)  # one grid step later at most
    assert torch.all(l2_ours <= l2_ref + (x - 0.5).flatten(1).norm(dim=1)[found_c] / 50 + 1e-5)
