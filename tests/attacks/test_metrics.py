"""Hand-made checks of the attack metrics, the repetition merge, examples and Fourier maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from tdlib.attacks import (
    AttackResult,
    accuracy_loss_curve,
    attack_summary,
    curve_auc,
    fourier_sensitivity,
    minimal_over_repetitions,
    select_examples,
)
from tdlib.attacks.fourier import fourier_basis
from tdlib.errors import ConfigError

INF = math.inf


def _result(success: list[bool], l2: list[float], clean: list[bool],
            fill: list[float] | None = None, mean_abs: list[float] | None = None,
            frac: list[float] | None = None) -> AttackResult:
    n = len(l2)
    x_adv = torch.tensor(fill or [0.0] * n).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()
    zeros = [0.0] * n
    return AttackResult(
        x_adv=x_adv, success=torch.tensor(success), l2=torch.tensor(l2, dtype=torch.float64),
        clean_correct=torch.tensor(clean), linf=torch.tensor(l2, dtype=torch.float64),
        mean_abs=torch.tensor(mean_abs or zeros, dtype=torch.float64),
        frac_changed=torch.tensor(frac or zeros, dtype=torch.float64), attack="toy",
        protocol="paper")


def test_accuracy_loss_curve_hand_made() -> None:
    d, loss = accuracy_loss_curve(np.array([0.0, 0.5, INF, 0.5, 1.0]), n_total=10)
    np.testing.assert_allclose(d, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(loss, [0.0, 20.0, 30.0])
    assert curve_auc(d, loss, 2.0) == pytest.approx((0.5 * 20 + 1.0 * 30) / 200)
    d, loss = accuracy_loss_curve(torch.tensor([INF, 0.0]), n_total=2)
    np.testing.assert_allclose(d, [0.0])
    np.testing.assert_allclose(loss, [0.0])
    with pytest.raises(ConfigError):
        accuracy_loss_curve([0.1, 0.2], n_total=1)
    with pytest.raises(ConfigError):
        accuracy_loss_curve([float("nan")], n_total=1)


def test_attack_summary_hand_made() -> None:
    res = _result([False, True, False, True, True], [0.0, 0.5, INF, 0.5, 1.0],
                  [False, True, True, True, True], mean_abs=[0, 0.1, 0, 0.2, 0.3],
                  frac=[0, 0.5, 0, 1.0, 0.25])
    s = attack_summary(res, l2_bound=2.0)
    assert s["n"] == 5
    assert s["clean_accuracy"] == pytest.approx(80.0)
    assert s["adversarial_accuracy"] == pytest.approx(20.0)
    assert s["success_rate"] == pytest.approx(75.0)
    assert s["median_l2"] == pytest.approx(0.75)  # median of 0.5, 0.5, 1.0, inf
    assert s["mean_l2"] == pytest.approx(2.0 / 3.0)
    assert s["ptb"] == pytest.approx(0.2)
    assert s["ptbr"] == pytest.approx(100 * 1.75 / 3)
    assert s["auc"] == pytest.approx((0.5 * 40 + 1.0 * 60) / 200)
    mostly_failed = _result([True, False, False], [0.3, INF, INF], [True, True, True])
    assert attack_summary(mostly_failed)["median_l2"] == INF


def test_minimal_over_repetitions_picks_smallest_positive() -> None:
    clean = [True, True, True, False]
    r1 = _result([True, False, True, False], [0.5, INF, 0.3, 0.0], clean, fill=[1, 1, 1, 1])
    r2 = _result([True, True, False, False], [0.4, 0.9, INF, 0.0], clean, fill=[2, 2, 2, 2])
    r3 = _result([True, False, True, False], [0.6, INF, 0.2, 0.0], clean, fill=[3, 3, 3, 3])
    m = minimal_over_repetitions([r1, r2, r3])
    assert m.l2.tolist() == [0.4, 0.9, 0.2, 0.0]
    assert m.success.tolist() == [True, True, True, False]
    assert m.x_adv[:, 0, 0, 0].tolist() == [2.0, 2.0, 3.0, 1.0]
    # the paper's np.sum(ind) bug would drop an update of sample 0 alone; we keep it
    only0 = _result([True, False, True, False], [0.1, INF, 0.9, 0.0], clean, fill=[4, 4, 4, 4])
    assert minimal_over_repetitions([r1, only0]).l2[0].item() == pytest.approx(0.1)
    assert torch.isinf(minimal_over_repetitions([r1, r3]).l2[1])
    with pytest.raises(ConfigError):
        minimal_over_repetitions([])
    with pytest.raises(ConfigError):
        minimal_over_repetitions([r1, _result([False] * 4, [0.0] * 4, [False] * 4)])


def test_select_examples() -> None:
    res = _result([True, True, False, True], [0.3, 0.1, INF, 0.2], [True] * 4, fill=[1, 1, 0, 1])
    x = torch.zeros(4, 1, 2, 2)
    ex = select_examples(res, 2, x=x, how="smallest")
    assert ex["index"].tolist() == [1, 3]
    assert torch.equal(ex["difference"], ex["adversarial"] - ex["original"])
    assert select_examples(res, 5, x=x)["index"].tolist() == [1, 3, 0]
    assert select_examples(res, 1, x=x, how="largest")["index"].tolist() == [0]


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(torch.randn(2, 3 * 6 * 6, generator=g))

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.w.t()


def test_fourier_basis_is_real_unit_norm() -> None:
    for i, j in [(0, 0), (1, 2), (-3, 3), (4, -1)]:
        b = fourier_basis(8, 8, i, j)
        assert b.shape == (8, 8)
        assert b.norm().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(fourier_basis(8, 8, 1, 2), fourier_basis(8, 8, -1, -2))


def test_fourier_sensitivity_shape_range_and_eps_zero() -> None:
    model = _Linear().eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(10, 3, 6, 6, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[0] = 1 - y[0]  # one clean error -> error rate 0.1 everywhere at eps 0
    clean = fourier_sensitivity(model, x, y, eps=0.0)
    assert clean.shape == (6, 6)
    assert torch.allclose(clean, torch.full((6, 6), 0.1))
    heat = fourier_sensitivity(model, x, y, size=3, eps=5.0, batch_size=4)
    assert heat.shape == (3, 3)
    assert float(heat.min()) >= 0.0 and float(heat.max()) <= 1.0
    with pytest.raises(ConfigError):
        fourier_sensitivity(model.train(), x, y)
